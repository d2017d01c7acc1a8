"""notifications carry the lead to reply to and the thread of the lead's message

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reply_name', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('reply_addr', sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column('in_reply_to', sa.String(length=998), nullable=True))
        batch_op.add_column(sa.Column('thread_refs', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_column('thread_refs')
        batch_op.drop_column('in_reply_to')
        batch_op.drop_column('reply_addr')
        batch_op.drop_column('reply_name')
