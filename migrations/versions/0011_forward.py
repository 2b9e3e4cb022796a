"""job.measure: what a timed call covers, the pipeline call or the model forward

Jobs written before it timed the pipeline call: the server default fills them.

Revision ID: 0011_forward
Revises: 0010_instances
Create Date: 2026-12-02 10:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011_forward'
down_revision: str | None = '0010_instances'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('measure', sa.String(length=16), server_default='pipeline', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_column('measure')
