"""first table

Revision ID: fa11ed000001
Revises: 
Create Date: 2026-11-24 03:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = 'fa11ed000001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('mod_failing_a',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mod_failing_a'))
    )


def downgrade() -> None:
    op.drop_table('mod_failing_a')
