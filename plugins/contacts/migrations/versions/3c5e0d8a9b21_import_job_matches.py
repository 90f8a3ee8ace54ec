"""import jobs remember which rows match existing contacts

Revision ID: 3c5e0d8a9b21
Revises: f267c762d096
Create Date: 2026-11-25 13:10:00.000000
"""
from alembic import op
import sqlalchemy as sa

revision = '3c5e0d8a9b21'
down_revision = 'f267c762d096'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('contacts_import_job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('matches', sa.JSON(), nullable=False, server_default='[]'))


def downgrade() -> None:
    with op.batch_alter_table('contacts_import_job', schema=None) as batch_op:
        batch_op.drop_column('matches')
