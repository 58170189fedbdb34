"""alembic's entry point: migrate the connection `modiste.app.db.upgrade` hands over, or the URL
in the configuration (`alembic -x`-free use from the command line)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

from modiste.app.db import Base

target_metadata = Base.metadata
config = context.config


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = engine_from_config(config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.",
                                poolclass=pool.NullPool)
    with engine.begin() as connection:
        _run(connection)


def _run(connection) -> None:
    # Batch mode: SQLite alters a table by copying it, which later migrations will need.
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
