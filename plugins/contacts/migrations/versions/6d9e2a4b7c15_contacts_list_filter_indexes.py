"""contacts: the list's usual filters (city, stage, owner) indexed in the default order

Revision ID: 6d9e2a4b7c15
Revises: 3c5e0d8a9b21
Create Date: 2026-11-25 16:20:00
"""
from alembic import op

revision = '6d9e2a4b7c15'
down_revision = '3c5e0d8a9b21'
branch_labels = None
depends_on = None

INDEXES = {
    'ix_contacts_contact_city_created': ['city', 'created_at', 'id'],
    'ix_contacts_contact_stage_created': ['stage', 'created_at', 'id'],
    'ix_contacts_contact_owner_created': ['owner_id', 'created_at', 'id'],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, 'contacts_contact', columns, unique=False)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name='contacts_contact')
