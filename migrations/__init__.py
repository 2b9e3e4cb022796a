"""Alembic environment and versions; `farm db upgrade` runs them (see farm/db/migrate.py)."""
