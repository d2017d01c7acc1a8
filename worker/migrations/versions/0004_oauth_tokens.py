"""oauth tokens (sealed refresh tokens per mailbox) and bounce-guard mailbox pauses (issue 15)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('oauth_tokens',
    sa.Column('mailbox', sa.String(length=64), nullable=False),
    sa.Column('account', sa.String(length=320), nullable=False),
    sa.Column('refresh_sealed', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('mailbox', name=op.f('pk_oauth_tokens'))
    )
    op.create_table('mailbox_pauses',
    sa.Column('mailbox', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('paused_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('mailbox', name=op.f('pk_mailbox_pauses'))
    )


def downgrade() -> None:
    op.drop_table('mailbox_pauses')
    op.drop_table('oauth_tokens')
