"""workspace: sign-in links, sessions and the log of who did what (issue 17)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('workspace_login_tokens',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_workspace_login_tokens')),
    )
    op.create_table('workspace_sessions',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_workspace_sessions')),
    )
    op.create_table('workspace_actions',
    sa.Column('id', ID, nullable=False),
    sa.Column('lead_id', ID, nullable=False),
    sa.Column('actor', sa.String(length=320), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('inbound_id', sa.BigInteger(), nullable=True),
    sa.Column('touch_id', sa.BigInteger(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_workspace_actions_lead_id_leads'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workspace_actions')),
    )
    op.create_index('ix_workspace_actions_lead', 'workspace_actions', ['lead_id', 'at'])
    op.create_index('ix_workspace_actions_inbound', 'workspace_actions', ['inbound_id'])
    # the workspace asks "whose leads, whose tasks, which human replies" on every page
    op.create_index('ix_leads_owner_lower', 'leads', [sa.text('lower(owner)')])
    op.create_index('ix_touches_open_owner', 'touches', [sa.text('lower(owner)'), 'due_at'],
                    sqlite_where=sa.text("state = 'open'"), postgresql_where=sa.text("state = 'open'"))
    op.create_index('ix_inbound_class_received', 'inbound', ['class', 'received_at'])
    op.create_index('ix_touches_open_due', 'touches', ['due_at', 'id'],
                    sqlite_where=sa.text("state = 'open'"), postgresql_where=sa.text("state = 'open'"))
    op.create_index('ix_enrollments_campaign_status', 'enrollments', ['campaign', 'status'])


def downgrade() -> None:
    op.drop_index('ix_enrollments_campaign_status', 'enrollments')
    op.drop_index('ix_touches_open_due', 'touches')
    op.drop_index('ix_inbound_class_received', 'inbound')
    op.drop_index('ix_touches_open_owner', 'touches')
    op.drop_index('ix_leads_owner_lower', 'leads')
    op.drop_index('ix_workspace_actions_inbound', 'workspace_actions')
    op.drop_index('ix_workspace_actions_lead', 'workspace_actions')
    op.drop_table('workspace_actions')
    op.drop_table('workspace_sessions')
    op.drop_table('workspace_login_tokens')
