"""What `modiste serve` does: issue tokens, or run the app under uvicorn."""

from __future__ import annotations

import gc
from collections.abc import Callable

from modiste.app.auth import ensure_admin, issue_shopper_token, reset_admin_token
from modiste.app.db import Database
from modiste.app.settings import Settings
from modiste.data import Dataset


def open_database(settings: Settings) -> Database:
    db = Database(settings.db_url)
    db.upgrade()
    return db


def issue_token(settings: Settings, user_id: str) -> str:
    """A new shopper token for a dataset user, without starting the server."""
    db = open_database(settings)
    try:
        return issue_shopper_token(db, Dataset(settings.data), user_id)
    finally:
        db.close()


def new_admin_token(settings: Settings) -> str:
    db = open_database(settings)
    try:
        return reset_admin_token(db)
    finally:
        db.close()


def run(settings: Settings, host: str, port: int, say: Callable[[str], None]) -> None:
    """Build the app (every check happens here, before listening), create the admin on first start, serve."""
    import uvicorn

    from modiste.app.main import create_app

    app = create_app(settings)
    # The catalogue, the models and the libraries are millions of objects that live as long as the
    # server: out of the collector's sight, its full collections no longer stall requests for tens of ms.
    gc.collect()
    gc.freeze()
    token = ensure_admin(app.state.services.db)
    if token:
        say(f"admin token (shown once; only its hash is stored): {token}")
    say(f"serving '{app.state.services.ds.name}' on http://{host}:{port} (API docs at /docs)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
