"""top entry

Revision ID: a1b2c3d40003
Revises: 
Create Date: 2026-11-24 03:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = 'a1b2c3d40003'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('mod_top_entry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=True),
    sa.Column('note', sa.String(length=80), nullable=False),
    sa.ForeignKeyConstraint(['item_id'], ['mod_child_item.id'], name=op.f('fk_mod_top_entry_item_id_mod_child_item')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mod_top_entry'))
    )


def downgrade() -> None:
    op.drop_table('mod_top_entry')
