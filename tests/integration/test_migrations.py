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


@pytest.mark.parametrize("url_fixture", ["pg_url", "sqlite_url"])
def test_0006_fills_report_columns_of_existing_rows(
    url_fixture: str, request: pytest.FixtureRequest
) -> None:
    """Jobs and results written before 0006 get the columns a new write would give them."""
    import json

    from sqlalchemy import text

    from farm.db.models import spec_columns

    url = request.getfixturevalue(url_fixture)
    upgrade(url, "0005")
    spec = {
        "model": {"name": "m"}, "input_name": "short", "input_text": "a short sentence",
        "batch_size": 8, "batching": "batched", "backend": "ipex",
        "backend_options": {"jit": True, "dtype": "bf16"}, "pool": "spr",
        "allocator": "tcmalloc", "protocol": {"target_ci": 0.02},
    }  # fmt: skip
    identity = {"name": "m", "weights": "random", "weights_sha256": "f00d"}
    with get_engine(url).begin() as conn:
        conn.execute(text("INSERT INTO campaign (id, name, created_at, matrix) "
                          "VALUES (1, 'old', CURRENT_TIMESTAMP, '{}')"))  # fmt: skip
        conn.execute(
            text(
                "INSERT INTO job (id, campaign_id, cell_key, state, spec, pool, backend, model, "
                "input_name, batch_size, queue, attempts, created_at) VALUES (7, 1, 'k', "
                "'succeeded', :spec, 'spr', 'ipex', 'm', 'short', 8, 'farm.spr', 1, "
                "CURRENT_TIMESTAMP)"
            ),
            {"spec": json.dumps(spec)},
        )
        conn.execute(
            text(
                "INSERT INTO result (job_id, created_at, tokens, n, mean_ms, std_ms, min_ms, "
                "max_ms, p50_ms, p90_ms, p99_ms, samples, model_identity, environment, setup_s, "
                "measure_s) VALUES (7, CURRENT_TIMESTAMP, 18, 1, 1, 0, 1, 1, 1, 1, 1, :blob, "
                ":identity, '{}', 0, 0)"
            ),
            {"blob": b"", "identity": json.dumps(identity)},
        )
    upgrade(url)
    with get_engine(url).connect() as conn:
        job = conn.execute(
            text("SELECT batching, allocator, options, mode, input_hash, instances, "
                 "cores_per_instance, measure FROM job WHERE id = 7")  # later defaults
        ).one()
        result = conn.execute(text("SELECT weights_sha256, random_weights FROM result")).one()
    assert dict(job._mapping) == spec_columns(spec)
    assert job.options == '{"dtype":"bf16","jit":true}' and job.mode == "adaptive"
    assert tuple(result) == ("f00d", True)


@pytest.mark.parametrize("url_fixture", ["pg_url", "sqlite_url"])
def test_0007_fills_the_stacks_of_existing_rows(
    url_fixture: str, request: pytest.FixtureRequest
) -> None:
    """A result's stack comes from its fingerprint (an ipex venv's run of a main-stack job),
    else from its job's spec; every job gets its spec's stack."""
    import json

    from sqlalchemy import text

    url = request.getfixturevalue(url_fixture)
    upgrade(url, "0006")
    with get_engine(url).begin() as conn:
        conn.execute(text("INSERT INTO campaign (id, name, created_at, matrix) "
                          "VALUES (1, 'old', CURRENT_TIMESTAMP, '{}')"))  # fmt: skip
        for jid, stack, env in ((1, "main", {"host": {"stack": "ipex"}}), (2, "ipex", {}),
                                (3, None, {})):  # fmt: skip
            spec = {"backend": "pytorch", **({"stack": stack} if stack else {})}
            conn.execute(
                text(
                    "INSERT INTO job (id, campaign_id, cell_key, state, spec, pool, backend, "
                    "model, input_name, batch_size, attempts, created_at) VALUES (:id, 1, :key, "
                    "'succeeded', :spec, 'p', 'pytorch', 'm', 's', 1, 1, CURRENT_TIMESTAMP)"
                ),
                {"id": jid, "key": f"k{jid}", "spec": json.dumps(spec)},
            )
            conn.execute(
                text(
                    "INSERT INTO result (job_id, created_at, tokens, n, mean_ms, std_ms, "
                    "min_ms, max_ms, p50_ms, p90_ms, p99_ms, samples, model_identity, "
                    "environment, setup_s, measure_s) VALUES (:id, CURRENT_TIMESTAMP, 1, 1, 1, "
                    "0, 1, 1, 1, 1, 1, :blob, '{}', :env, 0, 0)"
                ),
                {"id": jid, "blob": b"", "env": json.dumps(env)},
            )
    upgrade(url)
    with get_engine(url).connect() as conn:
        jobs = conn.execute(text("SELECT id, stack FROM job ORDER BY id")).all()
        results = conn.execute(text("SELECT job_id, stack FROM result ORDER BY job_id")).all()
    assert [tuple(r) for r in jobs] == [(1, "main"), (2, "ipex"), (3, "main")]
    assert [tuple(r) for r in results] == [(1, "ipex"), (2, "ipex"), (3, "main")]


def test_the_files_name_the_chain_commands_check(sqlite_url: str) -> None:
    """schema_revisions (read by file name) is Alembic's own chain, oldest first."""
    from alembic.script import ScriptDirectory

    from farm.db.migrate import alembic_config
    from farm.db.session import schema_head, schema_revisions

    script = ScriptDirectory.from_config(alembic_config(sqlite_url))
    chain = [rev.revision for rev in script.walk_revisions()][::-1]
    assert list(schema_revisions()) == chain and schema_head() == script.get_current_head()


def test_a_database_behind_this_farm_is_refused_with_the_fix(sqlite_url: str) -> None:
    from farm.db.session import check_database, schema_revisions
    from farm.errors import ServiceUnavailable

    upgrade(sqlite_url, schema_revisions()[-2])
    with pytest.raises(ServiceUnavailable, match=r"needs .*: run `farm db upgrade`"):
        check_database(sqlite_url)
    with get_engine(sqlite_url).begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999_future'")
    with pytest.raises(ServiceUnavailable, match="a newer Farm migrated it: upgrade Farm"):
        check_database(sqlite_url)
    upgrade_ok = sqlite_url.replace("farm.db", "ok.db")
    upgrade(upgrade_ok)
    check_database(upgrade_ok)
