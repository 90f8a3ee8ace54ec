"""second table, then a failure

Revision ID: fa11ed000002
Revises: fa11ed000001
Create Date: 2026-11-24 03:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = 'fa11ed000002'
down_revision = 'fa11ed000001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('mod_failing_b',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mod_failing_b'))
    )
    op.execute("INSERT INTO mod_failing_no_such_table (id) VALUES (1)")


def downgrade() -> None:
    op.drop_table('mod_failing_b')
