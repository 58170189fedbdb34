"""The modiste app: an HTTP API over a dataset and its trained runs, with per-shopper state in SQL.

    from modiste.app import Settings, create_app
    app = create_app(Settings(data=Path("data/world-default"), rec_run=Path("data/runs/bpr-default")))

Modules: settings (what a server starts with), db (tables, sessions, migrations), auth (tokens),
catalogue (browse, search, pictures), index (faiss top-k), recommend (factor models, refit to
feedback), shoppers (feedback and taste vectors), outfits, schemas (pydantic), errors, routes/.
"""

from __future__ import annotations

__all__ = ["Settings", "create_app"]


def __getattr__(name: str):
    # Lazily: `modiste serve --issue-token` needs the database, not torch, faiss and FastAPI.
    if name == "create_app":
        from modiste.app.main import create_app

        return create_app
    if name == "Settings":
        from modiste.app.settings import Settings

        return Settings
    raise AttributeError(name)
