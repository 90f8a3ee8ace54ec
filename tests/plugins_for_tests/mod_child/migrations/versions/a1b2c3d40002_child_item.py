"""child item

Revision ID: a1b2c3d40002
Revises: 
Create Date: 2026-11-24 03:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = 'a1b2c3d40002'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('mod_child_item',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('thing_id', sa.Integer(), nullable=True),
    sa.Column('note', sa.String(length=80), nullable=False),
    sa.ForeignKeyConstraint(['thing_id'], ['mod_base_thing.id'], name=op.f('fk_mod_child_item_thing_id_mod_base_thing')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mod_child_item'))
    )


def downgrade() -> None:
    op.drop_table('mod_child_item')
