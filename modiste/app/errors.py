"""Bad input gets a 4xx that says what was wrong, never a 5xx; bodies over the limit get a 413.

FastAPI's 422 already names each bad field (`detail`: a list of {loc, msg, type}); the handlers
here give the bare 404 and 405 of unknown routes a sentence, and turn a refusal found deep in a
call (`BadField`) into the same 422 shape as pydantic's.
"""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BadField(Exception):
    """A request field that parsed but means nothing here (e.g. an item id not in the catalogue)."""

    def __init__(self, loc: tuple, message: str, value=None):
        super().__init__(message)
        self.loc, self.message, self.value = loc, message, value

    def detail(self) -> list[dict]:
        return [{"loc": list(self.loc), "msg": self.message, "type": "value_error", "input": self.value}]


def install(app: FastAPI, max_body_bytes: int) -> None:
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)

    @app.exception_handler(BadField)
    async def bad_field(_request: Request, error: BadField) -> JSONResponse:
        return JSONResponse({"detail": error.detail()}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        detail = error.detail
        if error.status_code == 404 and detail == "Not Found":
            detail = f"no route {request.url.path}: see /docs for the API"
        elif error.status_code == 405:
            detail = f"method {request.method} is not allowed on {request.url.path}"
        return JSONResponse({"detail": detail}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _jsonable(error.errors())}, status_code=422)


def _jsonable(errors) -> list[dict]:
    """pydantic's errors, with anything JSON cannot carry (an exception in ctx, bytes) as text."""
    return json.loads(json.dumps(list(errors), default=str))


class BodyLimit:
    """Refuse a request body over `max_bytes` with a 413 before the app reads it: by its
    Content-Length when it has one, else by counting as it streams in."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._refuse(send)
            return
        body, more = [], True
        size = 0
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(send)
                return
            body.append(chunk)
            more = message.get("more_body", False)
        replay: list[Message] = [{"type": "http.request", "body": b"".join(body), "more_body": False}]

        async def replayed() -> Message:
            return replay.pop() if replay else await receive()

        await self.app(scope, replayed, send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"detail": f"request body too large: at most {self.max_bytes} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
