"""contacts: the list's sort columns indexed with the id that breaks their ties

Revision ID: b5d72e9c4a18
Revises: 8b1f4c6e2d57
Create Date: 2026-12-03 13:55:00
"""
from alembic import op

revision = 'b5d72e9c4a18'
down_revision = '8b1f4c6e2d57'
branch_labels = None
depends_on = None

# Each new index starts with the old one's column, which it replaces.
REPLACED = {
    'ix_contacts_contact_name': ('ix_contacts_contact_name_order', ['name', 'id']),
    'ix_contacts_contact_created_at': ('ix_contacts_contact_created_order', ['created_at', 'id']),
    'ix_contacts_contact_updated_at': ('ix_contacts_contact_updated_order', ['updated_at', 'id']),
}


def upgrade() -> None:
    for old, (new, columns) in REPLACED.items():
        op.create_index(new, 'contacts_contact', columns, unique=False)
        op.drop_index(old, table_name='contacts_contact')


def downgrade() -> None:
    for old, (new, columns) in REPLACED.items():
        op.create_index(old, 'contacts_contact', columns[:1], unique=False)
        op.drop_index(new, table_name='contacts_contact')
