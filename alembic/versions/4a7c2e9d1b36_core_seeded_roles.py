"""core: remember which default roles were created, so a deleted one stays deleted

Revision ID: 4a7c2e9d1b36
Revises: 1f65dac837fb
Create Date: 2026-11-25 18:05:00
"""
from alembic import op
import sqlalchemy as sa
import kehu.db

revision = '4a7c2e9d1b36'
down_revision = '1f65dac837fb'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('kehu_seeded_role',
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('module', sa.String(length=40), nullable=False),
    sa.Column('seeded_at', kehu.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_kehu_seeded_role'))
    )
    # The plugins' roles that are there now were created by earlier upgrades: record them, so
    # that none of them comes back once an administrator deletes it. (Roles administrators make,
    # and the core's, have module "core": they are never recorded.)
    op.execute("INSERT INTO kehu_seeded_role (name, module, seeded_at) "
               "SELECT name, module, CURRENT_TIMESTAMP FROM kehu_role WHERE module NOT IN ('', 'core')")


def downgrade() -> None:
    op.drop_table('kehu_seeded_role')
