"""stack cells: the software stack a job was sent to and the one its result ran in

A report's cell is one stack's: results from the `main` and the `ipex` stack (torch 2.13
and 2.8) are never pooled. `job.stack` is the job's spec stack; `result.stack` is the stack
the result's fingerprint recorded (NAME@LOCK once workers record the lock hash). Existing
results get their fingerprint's stack name, else their job's stack.

Revision ID: 0007_stackcells
Revises: 0006
Create Date: 2026-12-01 10:00:00
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = '0007_stackcells'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHUNK = 2000


def upgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stack', sa.String(length=50), server_default='main', nullable=False))
    with op.batch_alter_table('result', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stack', sa.String(length=100), nullable=True))
    job = sa.table('job', sa.column('id'), sa.column('spec', sa.JSON), sa.column('stack'))
    result = sa.table('result', sa.column('id'), sa.column('job_id'),
                      sa.column('environment', sa.JSON), sa.column('stack'))
    stacks: dict[int, str] = {}
    for rows in _chunks(sa.select(job.c.id, job.c.spec), job.c.id):
        params = [{'v_id': jid, 'v_stack': str((spec or {}).get('stack') or 'main')}
                  for jid, spec in rows]
        stacks.update((p['v_id'], p['v_stack']) for p in params)
        _update(job, params)
    for rows in _chunks(sa.select(result.c.id, result.c.job_id, result.c.environment), result.c.id):
        params = [{'v_id': rid, 'v_stack': _recorded(env) or stacks.get(jid, 'main')}
                  for rid, jid, env in rows]
        _update(result, params)


def _recorded(environment: Any) -> str | None:
    """The rule of farm.stacks.recorded_stack, as it was at 0007."""
    host = (environment or {}).get('host') if isinstance(environment, dict) else None
    name = host.get('stack') if isinstance(host, dict) else None
    if not isinstance(name, str) or not name:
        return None
    lock = host.get('stack_lock')  # type: ignore[union-attr]
    return f'{name}@{lock}' if isinstance(lock, str) and lock else name


def _chunks(stmt: sa.Select[Any], key: Any) -> Iterator[list[Any]]:
    bind, last = op.get_bind(), 0
    while True:
        rows = bind.execute(stmt.where(key > last).order_by(key).limit(CHUNK)).all()
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def _update(table: sa.TableClause, params: list[dict[str, Any]]) -> None:
    stmt = table.update().where(table.c.id == sa.bindparam('v_id')).values(
        stack=sa.bindparam('v_stack'))
    op.get_bind().execute(stmt, params)


def downgrade() -> None:
    with op.batch_alter_table('result', schema=None) as batch_op:
        batch_op.drop_column('stack')
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_column('stack')
