"""Bundles through real databases: a campaign exported from SQLite (where `farm run`
writes) and pushed into PostgreSQL (or another SQLite) comes back column for column, once;
a bad bundle writes nothing (farm.app.bundles over farm.db.bundles)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from farm.app.bundlefile import BundleError
from farm.app.bundles import export_bundle, push_bundle
from farm.app.ports import Pushed
from farm.db.bundles import CAMPAIGN, JOB, RESULT, WORKER, SqlBundleStore
from farm.db.migrate import upgrade
from farm.db.models import as_utc
from farm.db.session import get_engine
from farm.errors import FarmError
from tests.support.bundles import edited, fill_campaign, split, tampered, truncated
from tests.support.harness import count_rows, job_spec

pytestmark = pytest.mark.integration
TABLES = ("campaign", "job", "result", "worker")
IDS = {"campaign": {"id"}, "job": {"id", "campaign_id"}, "result": {"id", "job_id"}}


@pytest.fixture
def source(tmp_path: Path) -> tuple[str, int]:
    """A SQLite database (the embedded mode's) holding one ended campaign."""
    url = f"sqlite:///{tmp_path / 'offline.db'}"
    upgrade(url)
    return url, fill_campaign(url)


@pytest.fixture
def bundle(source: tuple[str, int], tmp_path: Path) -> Path:
    url, campaign = source
    path = tmp_path / "offline.farm"
    export_bundle(SqlBundleStore(url), str(campaign), path)
    return path


@pytest.fixture(params=["migrated_pg", "sqlite"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The central database: PostgreSQL, or another SQLite file."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'central.db'}"
        upgrade(url)
        return url
    return str(request.getfixturevalue(request.param))


def rows(url: str, table: Any, where: Any = None) -> list[dict[str, Any]]:
    """Every column of the rows, times as aware UTC, in id order."""
    stmt = select(table).order_by(*table.primary_key.columns)
    with get_engine(url).connect() as conn:
        found = conn.execute(stmt if where is None else stmt.where(where)).all()
    return [
        {k: as_utc(v) if hasattr(v, "tzinfo") else v for k, v in r._mapping.items()} for r in found
    ]


def without(row: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in keys}


def counts(url: str) -> dict[str, int]:
    return {table: count_rows(url, table) for table in TABLES}


def test_a_pushed_campaign_equals_its_source_column_for_column(
    source: tuple[str, int], bundle: Path, target: str
) -> None:
    src, campaign = source
    # Something in the central database already: the pushed rows get ids of their own.
    fill_campaign(target, "central", worker="w-central")
    _, pushed = push_bundle(SqlBundleStore(target), bundle)
    assert not pushed.already and (pushed.jobs, pushed.results) == (3, 1)
    assert pushed.campaign_id != campaign

    (before,) = rows(src, CAMPAIGN, CAMPAIGN.c.id == campaign)
    (after,) = rows(target, CAMPAIGN, CAMPAIGN.c.id == pushed.campaign_id)
    assert before["bundle_id"] and without(after, IDS["campaign"]) == without(
        before, IDS["campaign"]
    )
    jobs_before = rows(src, JOB, JOB.c.campaign_id == campaign)
    jobs_after = rows(target, JOB, JOB.c.campaign_id == pushed.campaign_id)
    assert [without(j, IDS["job"]) for j in jobs_after] == [
        without(j, IDS["job"]) for j in jobs_before
    ]
    assert [j["pool"] for j in jobs_after] == ["spr"] * 3
    assert jobs_after[1]["history"] and jobs_after[1]["history"][0]["error"] == "RuntimeError: boom"

    (result_before,) = rows(src, RESULT)
    (result_after,) = [r for r in rows(target, RESULT) if r["job_id"] == jobs_after[0]["id"]]
    compared = set(result_before) - IDS["result"]
    assert compared == {c.key for c in RESULT.columns} - {"id", "job_id"}  # every column
    for column in sorted(compared):
        assert result_after[column] == result_before[column], column
    assert result_after["host"] == "sprbox" and result_after["samples"] == bytes(range(256)) * 3
    assert result_after["weights_sha256"] == "ab" * 32 and result_after["random_weights"]
    for column in sorted(compared):  # nothing carried was left empty by the test data
        assert result_before[column] is not None, column

    (worker,) = [w for w in rows(target, WORKER) if w["name"] == "w1"]
    (worker_before,) = rows(src, WORKER)
    assert worker == worker_before  # the central database had no worker of that name


def test_pushing_twice_changes_nothing(bundle: Path, target: str, tmp_path: Path) -> None:
    store = SqlBundleStore(target)
    _, first = push_bundle(store, bundle)
    after_first = counts(target)
    _, second = push_bundle(store, bundle)
    assert second.already and second.campaign_id == first.campaign_id
    assert (second.jobs, second.results) == (3, 1)
    assert counts(target) == after_first == {"campaign": 1, "job": 3, "result": 1, "worker": 1}


def test_a_campaign_bundled_twice_pushes_once(
    source: tuple[str, int], bundle: Path, migrated_pg: str, tmp_path: Path
) -> None:
    """The bundle id is the campaign's: a second file of it is the same bundle."""
    url, campaign = source
    again = tmp_path / "again.farm"
    export_bundle(SqlBundleStore(url), str(campaign), again)
    assert split(again)[0]["id"] == split(bundle)[0]["id"]
    store = SqlBundleStore(migrated_pg)
    push_bundle(store, bundle)
    assert push_bundle(store, again)[1].already
    assert count_rows(migrated_pg, "campaign") == 1


def test_a_known_worker_keeps_its_row(bundle: Path, migrated_pg: str) -> None:
    fill_campaign(migrated_pg, "central")  # registers w1 here, with its own start time
    (before,) = rows(migrated_pg, WORKER)
    push_bundle(SqlBundleStore(migrated_pg), bundle)
    assert rows(migrated_pg, WORKER) == [before]


def _schema_2(h: dict[str, Any]) -> None:
    h["schema"] = 2


def _column(p: dict[str, Any]) -> None:
    p["jobs"][0]["result"]["joules"] = 1.5


def _type(p: dict[str, Any]) -> None:
    p["jobs"][0]["result"]["tokens"] = "eighteen"


def _state(p: dict[str, Any]) -> None:
    p["jobs"][2]["row"]["state"] = "queued"


def _missing(p: dict[str, Any]) -> None:
    del p["jobs"][1]["row"]["spec"]


def _uneven(p: dict[str, Any]) -> None:
    del p["jobs"][1]["row"]["error"]  # a nullable column, in one row only


def _twice(p: dict[str, Any]) -> None:
    p["jobs"][1]["row"]["cell_key"] = p["jobs"][0]["row"]["cell_key"]


def _long(p: dict[str, Any]) -> None:
    p["jobs"][0]["row"]["pool"] = "x" * 101


def _time(p: dict[str, Any]) -> None:
    p["campaign"]["created_at"] = "yesterday"


BAD: dict[str, tuple[Callable[[Path, Path], Path], str]] = {
    "truncated": (lambda src, dst: truncated(src, dst), "is truncated"),
    "tampered": (tampered, "fails its checksum"),
    "newer schema": (
        lambda src, dst: edited(src, dst, header_edit=_schema_2),
        "bundle schema 2, this Farm reads up to 1; upgrade Farm",
    ),
    "unknown column": (
        lambda src, dst: edited(src, dst, payload_edit=_column),
        "result column(s) joules this Farm does not know: it was made by a newer Farm",
    ),
    "wrong type": (
        lambda src, dst: edited(src, dst, payload_edit=_type),
        "job 0: result.tokens is str, not INTEGER",
    ),
    "job not ended": (
        lambda src, dst: edited(src, dst, payload_edit=_state),
        "job 2 is 'queued'; a bundle carries ended jobs only",
    ),
    "missing column": (
        lambda src, dst: edited(src, dst, payload_edit=_missing),
        "is malformed: job 1: job.spec is missing; nothing written",
    ),
    "uneven rows": (
        lambda src, dst: edited(src, dst, payload_edit=_uneven),
        "its job rows differ in their columns",
    ),
    "a cell twice": (
        lambda src, dst: edited(src, dst, payload_edit=_twice),
        "does not fit this database (a row breaks a constraint); nothing written",
    ),
    "too long": (
        lambda src, dst: edited(src, dst, payload_edit=_long),
        "job.pool is longer than 100 characters",
    ),
    "bad time": (
        lambda src, dst: edited(src, dst, payload_edit=_time),
        "campaign.created_at is not an ISO 8601 time",
    ),
}


@pytest.mark.parametrize("damage", sorted(BAD))
def test_a_bad_bundle_writes_nothing(
    bundle: Path, migrated_pg: str, tmp_path: Path, damage: str
) -> None:
    make, says = BAD[damage]
    bad = make(bundle, tmp_path / "bad.farm")
    before = counts(migrated_pg)
    with pytest.raises(BundleError) as caught:
        push_bundle(SqlBundleStore(migrated_pg), bad)
    assert says in str(caught.value) and "\n" not in str(caught.value)
    assert counts(migrated_pg) == before == dict.fromkeys(TABLES, 0)


def test_a_bundle_of_an_older_farm_takes_the_defaults(
    bundle: Path, migrated_pg: str, tmp_path: Path
) -> None:
    """A column a later migration added is missing from every row: its default fills it."""

    def older(p: dict[str, Any]) -> None:
        for job in p["jobs"]:
            assert job["row"].pop("measure") == "pipeline"

    _, pushed = push_bundle(SqlBundleStore(migrated_pg), edited(bundle, tmp_path / "old.farm",
                                                                payload_edit=older))  # fmt: skip
    assert [j["measure"] for j in rows(migrated_pg, JOB)] == ["pipeline"] * 3
    assert pushed.jobs == 3


def test_the_last_row_failing_rolls_back_the_first(bundle: Path, migrated_pg: str,
                                                   tmp_path: Path) -> None:  # fmt: skip
    """A worker row the database refuses (its last insert) leaves no campaign behind."""

    def bad_worker(p: dict[str, Any]) -> None:
        p["workers"][0]["pid"] = 2**40  # past PostgreSQL's integer

    bad = edited(bundle, tmp_path / "bad.farm", payload_edit=bad_worker)
    with pytest.raises(BundleError, match="could not be loaded .*; nothing written"):
        push_bundle(SqlBundleStore(migrated_pg), bad)
    assert counts(migrated_pg) == dict.fromkeys(TABLES, 0)


def test_a_database_without_farms_schema_is_refused(bundle: Path, pg_url: str) -> None:
    with pytest.raises(FarmError, match="has no Farm schema; run `farm db upgrade` first"):
        push_bundle(SqlBundleStore(pg_url), bundle)


def test_a_database_at_an_older_revision_is_refused(bundle: Path, pg_url: str) -> None:
    upgrade(pg_url, "0011_forward")
    with pytest.raises(FarmError, match="run `farm db upgrade`"):
        push_bundle(SqlBundleStore(pg_url), bundle)
    assert count_rows(pg_url, "campaign") == 0


def test_a_campaign_with_jobs_not_ended_is_not_bundled(sqlite_url: str, tmp_path: Path) -> None:
    from farm.db import repo
    from farm.db.session import session_factory, transaction

    upgrade(sqlite_url)
    with transaction(session_factory(sqlite_url)) as s:
        campaign = repo.create_campaign(s, "open", {}, [job_spec()])
    with pytest.raises(FarmError, match="has 1 jobs not ended"):
        export_bundle(SqlBundleStore(sqlite_url), str(campaign.id), tmp_path / "open.farm")
    assert not (tmp_path / "open.farm").exists()


def test_two_pushes_racing_write_one_campaign(bundle: Path, migrated_pg: str) -> None:
    """The second push looked before the first committed: the unique bundle id stops its
    insert, and it answers with the first push's campaign."""
    _, first = push_bundle(SqlBundleStore(migrated_pg), bundle)
    late = SqlBundleStore(migrated_pg)
    looked: list[str] = []

    def racing(bundle_id: str) -> Pushed | None:
        looked.append(bundle_id)
        return None if len(looked) == 1 else SqlBundleStore.pushed(late, bundle_id)

    late.pushed = racing  # type: ignore[method-assign]
    _, second = push_bundle(late, bundle)
    assert len(looked) == 2  # before the insert, and after the constraint stopped it
    assert second.already and second.campaign_id == first.campaign_id
    assert counts(migrated_pg) == {"campaign": 1, "job": 3, "result": 1, "worker": 1}
