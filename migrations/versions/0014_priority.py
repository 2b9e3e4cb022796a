"""campaign.priority: high, normal or low, carried by every message of its jobs

Campaigns written before it were sent at one priority: the server default says normal.

Revision ID: 0014_priority
Revises: 0013_drain
Create Date: 2026-12-03 10:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014_priority'
down_revision: str | None = '0013_drain'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('campaign', schema=None) as batch_op:
        batch_op.add_column(sa.Column('priority', sa.String(length=8), server_default='normal', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('campaign', schema=None) as batch_op:
        batch_op.drop_column('priority')
