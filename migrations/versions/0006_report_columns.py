"""report columns: job and result fields copied out of their JSON

Reports group on batching, allocator, backend options and the measure mode, and compare
matches on the input text and the weights hash; reading those out of `job.spec` and
`result.model_identity` was half of a report's SQL time on PostgreSQL. Existing rows are
filled here, with the rules of `farm.db.models.spec_columns` as they were at 0006.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 09:30:00
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHUNK = 2000
JOB_COLUMNS = ("batching", "allocator", "options", "mode", "input_hash")


def upgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('batching', sa.String(length=16), server_default='sequential', nullable=False))
        batch_op.add_column(sa.Column('allocator', sa.String(length=16), server_default='default', nullable=False))
        batch_op.add_column(sa.Column('options', sa.Text(), server_default='{}', nullable=False))
        batch_op.add_column(sa.Column('mode', sa.String(length=16), server_default='fixed', nullable=False))
        batch_op.add_column(sa.Column('input_hash', sa.String(length=32), server_default='', nullable=False))
    with op.batch_alter_table('result', schema=None) as batch_op:
        batch_op.add_column(sa.Column('weights_sha256', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('random_weights', sa.Boolean(), server_default=sa.false(), nullable=False))
    _fill_jobs()
    _fill_results()


def _chunks(table: sa.TableClause, json_column: str) -> Iterator[list[Any]]:
    bind, last = op.get_bind(), 0
    while True:
        stmt = sa.select(table.c.id, table.c[json_column]).where(table.c.id > last)
        rows = bind.execute(stmt.order_by(table.c.id).limit(CHUNK)).all()
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def _update(table: sa.TableClause, names: Sequence[str], params: list[dict[str, Any]]) -> None:
    values = {name: sa.bindparam(f"v_{name}") for name in names}
    stmt = table.update().where(table.c.id == sa.bindparam("v_id")).values(**values)
    op.get_bind().execute(stmt, params)


def _fill_jobs() -> None:
    job = sa.table('job', sa.column('id'), sa.column('spec', sa.JSON),
                   *(sa.column(name) for name in JOB_COLUMNS))
    for rows in _chunks(job, 'spec'):
        params = []
        for job_id, spec in rows:
            protocol = spec.get('protocol') or {}
            text = str(spec.get('input_text', '')).encode()
            params.append({
                'v_id': job_id,
                'v_batching': spec.get('batching') or 'sequential',
                'v_allocator': spec.get('allocator') or 'default',
                'v_options': json.dumps(spec.get('backend_options') or {}, sort_keys=True,
                                        separators=(',', ':')),
                'v_mode': 'fixed' if protocol.get('target_ci') is None else 'adaptive',
                'v_input_hash': hashlib.md5(text, usedforsecurity=False).hexdigest(),
            })
        _update(job, JOB_COLUMNS, params)


def _fill_results() -> None:
    result = sa.table('result', sa.column('id'), sa.column('model_identity', sa.JSON),
                      sa.column('weights_sha256'), sa.column('random_weights'))
    for rows in _chunks(result, 'model_identity'):
        params = [
            {'v_id': rid, 'v_weights_sha256': (ident or {}).get('weights_sha256'),
             'v_random_weights': (ident or {}).get('weights') == 'random'}
            for rid, ident in rows
        ]
        _update(result, ('weights_sha256', 'random_weights'), params)


def downgrade() -> None:
    with op.batch_alter_table('result', schema=None) as batch_op:
        batch_op.drop_column('random_weights')
        batch_op.drop_column('weights_sha256')
    with op.batch_alter_table('job', schema=None) as batch_op:
        for name in reversed(JOB_COLUMNS):
            batch_op.drop_column(name)
