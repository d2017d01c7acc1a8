"""reclassifications: corrections of an inbound message's class (issue 14)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('reclassifications',
    sa.Column('id', ID, nullable=False),
    sa.Column('inbound_id', ID, nullable=False),
    sa.Column('lead_id', ID, nullable=True),
    sa.Column('old_class', sa.String(length=16), nullable=False),
    sa.Column('old_subclass', sa.String(length=32), nullable=True),
    sa.Column('new_class', sa.String(length=16), nullable=False),
    sa.Column('new_subclass', sa.String(length=32), nullable=True),
    sa.Column('by', sa.String(length=320), nullable=False),
    sa.Column('undone', sa.Text(), nullable=True),
    sa.Column('action', sa.Text(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['inbound_id'], ['inbound.id'],
                            name=op.f('fk_reclassifications_inbound_id_inbound'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'],
                            name=op.f('fk_reclassifications_lead_id_leads'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reclassifications')),
    )
    op.create_index('ix_reclassifications_inbound_id', 'reclassifications', ['inbound_id'])
    op.create_index('ix_reclassifications_lead_id', 'reclassifications', ['lead_id'])


def downgrade() -> None:
    op.drop_index('ix_reclassifications_lead_id', 'reclassifications')
    op.drop_index('ix_reclassifications_inbound_id', 'reclassifications')
    op.drop_table('reclassifications')
