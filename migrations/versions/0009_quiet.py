"""lease extension: a job's lease held without heartbeats through a timed phase

The measuring process writes nothing while it times (issue 12): before a timed phase it
extends the job's lease once to cover the phase's bound, and beats again afterwards.

Revision ID: 0009_quiet
Revises: 0008_efficiency
Create Date: 2026-12-02 10:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009_quiet'
down_revision: str | None = '0008_efficiency'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_column('lease_until')
