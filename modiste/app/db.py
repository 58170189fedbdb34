"""The app's own state, in SQL: accounts, feedback events, refitted user vectors, hidden items, designs.

The dataset stays read-only; everything a shopper or an admin changes lives here. SQLAlchemy 2.x,
so any URL works: a SQLite file by default, PostgreSQL by URL. The schema is created and changed
only by the alembic migrations in `modiste/app/migrations/` (`upgrade` runs them at start); a test
checks that they build exactly the tables below.

Every write is one transaction (`Database.transaction()`), committed before the HTTP answer goes
out: what the API acknowledged is on disk. SQLite runs in WAL mode with synchronous=FULL.

A schema change: edit the models, then write the migration alembic proposes against a database at head:

    from alembic import command
    from modiste.app.db import alembic_config, make_engine, upgrade
    engine = make_engine("sqlite:///scratch.sqlite"); upgrade(engine)
    command.revision(alembic_config(engine), message="what changed", autogenerate=True)
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (CheckConstraint, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, String,
                        TypeDecorator, create_engine, event)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"
ROLES = ("shopper", "admin")
FEEDBACK_KINDS = ("like", "dislike", "buy")


def now() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A moment in UTC that comes back aware on every backend (SQLite keeps no time zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, _dialect) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, _dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class Account(Base):
    """A shopper (one per dataset user) or an admin. Only the SHA-256 of the token is stored."""

    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str | None] = mapped_column(String(128), unique=True)  # the dataset's user; None for an admin
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now)
    __table_args__ = (
        CheckConstraint("role IN ('shopper', 'admin')", name="ck_accounts_role"),
        CheckConstraint("(role = 'admin') = (user_id IS NULL)", name="ck_accounts_user"),
    )


def public_id() -> str:
    """A random id to show: counting ids would tell a shopper how much everyone else is doing."""
    return secrets.token_hex(8)


class Feedback(Base):
    """One like, dislike or buy: an append-only log (a shopper may delete their own events)."""

    __tablename__ = "feedback"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=public_id)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    item_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now)
    __table_args__ = (
        CheckConstraint("kind IN ('like', 'dislike', 'buy')", name="ck_feedback_kind"),
        Index("ix_feedback_account", "account_id", "id"),
    )


class UserVector(Base):
    """A shopper's vector refitted to their feedback (float32 bytes), a cache: `basis` says which
    model and which events it was computed from, and a stale one is recomputed from the events."""

    __tablename__ = "user_vectors"
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    basis: Mapped[str] = mapped_column(String(128))
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now, onupdate=now)


class HiddenItem(Base):
    """An item an admin took off the shelves: never searched, shown, recommended or composed."""

    __tablename__ = "hidden_items"
    item_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    hidden_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now)


class Design(Base):
    """A picture generated for a shopper (`modiste.app.designs`), kept until they delete it: the PNG, and the
    shopper's preference for it (DVBPR's theta_u . Phi) and its realism ((D - 1)^2) when it was drawn."""

    __tablename__ = "designs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=public_id)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    category: Mapped[str] = mapped_column(String(128))
    score: Mapped[float] = mapped_column(Float)
    realism: Mapped[float] = mapped_column(Float)
    png: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now)
    __table_args__ = (Index("ix_designs_account", "account_id", "created_at"),)


class Database:
    """An engine and its sessions. `transaction()` commits on success and rolls back on error."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._sessions() as session:
            yield session

    def upgrade(self) -> None:
        upgrade(self.engine)

    def close(self) -> None:
        self.engine.dispose()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA journal_mode = WAL")  # readers do not block the writer
    cursor.execute("PRAGMA synchronous = FULL")  # a commit is on disk before the answer goes out
    cursor.execute("PRAGMA busy_timeout = 5000")
    cursor.close()


def alembic_config(engine: Engine | None = None):
    """alembic's configuration for the packaged migrations (no alembic.ini needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to `revision` (idempotent)."""
    from alembic import command

    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
