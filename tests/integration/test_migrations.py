"""Every migration applied to an empty database gives exactly the models' schema."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import farm.db.pools  # noqa: F401  (the pool table and the report indexes)
from farm.db.migrate import current, upgrade
from farm.db.models import Base
from farm.db.session import get_engine

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("url_fixture", ["pg_url", "sqlite_url"])
def test_upgrade_head_matches_models(url_fixture: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(url_fixture)
    upgrade(url)
    assert current(url) is not None
    with get_engine(url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_upgrade_is_idempotent(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    first = current(sqlite_url)
    upgrade(sqlite_url)
    assert current(sqlite_url) == first
