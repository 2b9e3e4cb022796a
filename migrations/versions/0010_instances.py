"""throughput mode: the job's instances and cores per instance as columns

A cell measured as N pinned copies of C CPUs each is not the cell measured once: reports
group on these and compare matches on them. Jobs before this revision ran one copy on
the worker's own pinning, which the server defaults say (1 and 0), so nothing is filled.

Revision ID: 0010_instances
Revises: 0009_quiet
Create Date: 2026-12-01 10:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010_instances'
down_revision: str | None = '0009_quiet'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('instances', sa.Integer(), server_default='1', nullable=False))
        batch_op.add_column(sa.Column('cores_per_instance', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_column('cores_per_instance')
        batch_op.drop_column('instances')
