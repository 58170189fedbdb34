"""What a server is started with: one frozen dataclass, filled by `modiste serve` or by a test."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from modiste.app.index import IndexSpec

MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class Settings:
    """data: the dataset directory served; db: an SQLAlchemy URL (None: a SQLite file DATA/app.sqlite);
    rec_run / outfit_run: training runs on that dataset (None: their endpoints say they are off);
    index: how recommendations are retrieved (exact by default); threads: CPU threads for torch and faiss
    (one: on 2 cores, more collapse under any other load); max_body_bytes: larger requests get 413."""

    data: Path
    db: str | None = None
    rec_run: Path | None = None
    outfit_run: Path | None = None
    index: IndexSpec = field(default_factory=IndexSpec)
    threads: int = 1
    max_body_bytes: int = MAX_BODY_BYTES

    @property
    def db_url(self) -> str:
        return self.db or f"sqlite:///{(Path(self.data) / 'app.sqlite').resolve()}"
