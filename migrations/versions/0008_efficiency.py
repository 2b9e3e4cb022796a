"""efficiency: the worker's measured GEMM peak, each result's FLOPs and % of peak

Revision ID: 0008_efficiency
Revises: 0007_stackcells
Create Date: 2026-12-01 10:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008_efficiency'
down_revision: str | None = '0007_stackcells'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RESULT_COLUMNS = ('flops', 'gflops', 'peak_gflops', 'efficiency_pct')


def upgrade() -> None:
    with op.batch_alter_table('worker', schema=None) as batch_op:
        batch_op.add_column(sa.Column('peak', sa.JSON(), nullable=True))
    with op.batch_alter_table('result', schema=None) as batch_op:
        for name in RESULT_COLUMNS:
            batch_op.add_column(sa.Column(name, sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('result', schema=None) as batch_op:
        for name in reversed(RESULT_COLUMNS):
            batch_op.drop_column(name)
    with op.batch_alter_table('worker', schema=None) as batch_op:
        batch_op.drop_column('peak')
