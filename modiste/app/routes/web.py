"""The shopper's web page: GET / and its static files (/static/...), from modiste/app/web/.

Plain HTML, CSS and JavaScript modules that call the JSON API from the same origin: nothing to
build, nothing fetched from elsewhere (the Content-Security-Policy says so to the browser). Only
the files present in the folder when the app starts are served, by name, so no path reaches
outside it. The routes stay out of the OpenAPI schema: they are a client of the API, not part of it.
"""

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from modiste.app.schemas import DatasetSchemas

WEB = Path(__file__).resolve().parent.parent / "web"
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
               ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidate, so a new version of the page is picked up at once
}


def router(_schemas: DatasetSchemas) -> APIRouter:
    r = APIRouter(include_in_schema=False)
    files = {path.name: path for path in WEB.iterdir() if path.suffix in MEDIA_TYPES}

    def send(name: str) -> FileResponse:
        path = files.get(name)
        if path is None:
            raise HTTPException(404, f"no file {name!r} in the web page's static files")
        return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=HEADERS)

    @r.get("/")
    def page() -> FileResponse:
        return send("index.html")

    @r.get("/static/{name}")
    def static(name: str) -> FileResponse:
        return send(name)

    return r
