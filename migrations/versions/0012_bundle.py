"""campaign.bundle_id: the bundle a pushed campaign came from (`farm push`), unique

A campaign run on a host with no route to the farm travels as a bundle file; its id,
stored on the campaign it became, makes a second push of the same file a no-op (and the
unique constraint holds that even when two pushes race). Campaigns before it have none.

Revision ID: 0012_bundle
Revises: 0011_forward
Create Date: 2026-12-03 10:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012_bundle'
down_revision: str | None = '0011_forward'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('campaign', schema=None) as batch_op:
        batch_op.add_column(sa.Column('bundle_id', sa.String(length=36), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_campaign_bundle_id'), ['bundle_id'])


def downgrade() -> None:
    with op.batch_alter_table('campaign', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_campaign_bundle_id'), type_='unique')
        batch_op.drop_column('bundle_id')
