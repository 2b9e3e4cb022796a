"""worker.drain_requested_at and worker.stopped_at: draining a worker

drain_requested_at: `farm hosts drain` asks the worker to stop after its job in hand;
stopped_at: the worker exited cleanly (SIGTERM or a drain). Both NULL for a worker serving
normally; a worker that registers again clears both.

Revision ID: 0013_drain
Revises: 0012_bundle
Create Date: 2026-12-03 10:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013_drain'
down_revision: str | None = '0012_bundle'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('worker', schema=None) as batch_op:
        batch_op.add_column(sa.Column('drain_requested_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('stopped_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('worker', schema=None) as batch_op:
        batch_op.drop_column('stopped_at')
        batch_op.drop_column('drain_requested_at')
