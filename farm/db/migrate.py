"""Run Alembic migrations programmatically (the scripts ship inside the package)."""

from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config

from farm.db.session import check_database


def alembic_config(url: str) -> Config:
    cfg = Config()
    # By name, not by import: the db layer does not depend on the migrations package.
    cfg.set_main_option("script_location", str(files("farm.migrations")))
    # Passed as an attribute, not an ini option: configparser would choke on '%' in URLs.
    cfg.attributes["url"] = url
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    check_database(url, need_schema=False)
    command.upgrade(alembic_config(url), revision)


def current(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    from farm.db.session import get_engine

    with get_engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
