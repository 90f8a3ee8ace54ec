"""base thing

Revision ID: a1b2c3d40001
Revises: 
Create Date: 2026-11-24 03:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = 'a1b2c3d40001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('mod_base_thing',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('label', sa.String(length=80), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mod_base_thing'))
    )


def downgrade() -> None:
    op.drop_table('mod_base_thing')
