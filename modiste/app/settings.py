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
    design_rec_run / gan_run: a DVBPR run on that dataset and a GAN run on the same, together or neither
    (None: /me/designs says it is off);
    index: how recommendations are retrieved (exact by default); search: how /items?q= reads its text,
    "keyword" (every word, literally: the default here, light for tests) or "sentence" (by meaning, through
    the packaged sentence-embedding model: `modiste serve`'s default where it is installed); threads: CPU
    threads for torch and faiss (one: on 2 cores, more collapse under any other load); max_body_bytes:
    larger requests get 413; token_cache_seconds: how long a known token is remembered (`modiste.app.auth`)."""

    data: Path
    db: str | None = None
    rec_run: Path | None = None
    outfit_run: Path | None = None
    design_rec_run: Path | None = None
    gan_run: Path | None = None
    index: IndexSpec = field(default_factory=IndexSpec)
    search: str = "keyword"
    threads: int = 1
    max_body_bytes: int = MAX_BODY_BYTES
    token_cache_seconds: float = 60.0

    def __post_init__(self) -> None:
        if (self.design_rec_run is None) != (self.gan_run is None):
            raise ValueError("designs need both runs: --design-rec-run RUN (a DVBPR run: the taste they are drawn "
                             "toward) and --gan-run RUN (the GAN that draws them), or neither")

    @property
    def db_url(self) -> str:
        return self.db or f"sqlite:///{(Path(self.data) / 'app.sqlite').resolve()}"
