"""text-generation: the job's task and generation dimensions, the result's TTFT/TPOT

job.task (older jobs: text-classification), job.new_tokens and job.prompt_tokens (0: not
generation, or the input is the prompt); result.ttft_samples (int64 ns per timed call, as
`samples`) and the summaries ttft_ms, ttft_p99_ms, tpot_ms, tpot_p99_ms, tokens_per_s (NULL
for classification).

Revision ID: 0015_generation
Revises: 0014_priority
Create Date: 2026-12-04 10:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0015_generation'
down_revision: str | None = '0014_priority'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FLOATS = ('ttft_ms', 'ttft_p99_ms', 'tpot_ms', 'tpot_p99_ms', 'tokens_per_s')


def upgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('task', sa.String(length=32), server_default='text-classification', nullable=False))
        batch_op.add_column(sa.Column('new_tokens', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('prompt_tokens', sa.Integer(), server_default='0', nullable=False))
    with op.batch_alter_table('result', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ttft_samples', sa.LargeBinary(), nullable=True))
        for name in _FLOATS:
            batch_op.add_column(sa.Column(name, sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('result', schema=None) as batch_op:
        for name in reversed(_FLOATS):
            batch_op.drop_column(name)
        batch_op.drop_column('ttft_samples')
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_column('prompt_tokens')
        batch_op.drop_column('new_tokens')
        batch_op.drop_column('task')
