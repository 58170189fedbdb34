"""alembic migrations of the app's database (a package, so that wheels carry them)."""
