"""probe tables

Revision ID: e7a1c0de0001
Revises:
Create Date: 2026-11-24 02:00:00
"""
from alembic import op
import sqlalchemy as sa
import kehu.db

revision = 'e7a1c0de0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('events_probe_effect',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=True),
    sa.Column('handler', sa.String(length=40), nullable=False),
    sa.Column('note', sa.String(length=200), nullable=False),
    sa.Column('created_at', kehu.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events_probe_effect'))
    )


def downgrade() -> None:
    op.drop_table('events_probe_effect')
