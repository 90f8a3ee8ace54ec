"""contacts: a contact's points indexed in their order (the list reads first phone numbers from it)

Revision ID: 8b1f4c6e2d57
Revises: 6d9e2a4b7c15
Create Date: 2026-12-03 09:45:00
"""
from alembic import op

revision = '8b1f4c6e2d57'
down_revision = '6d9e2a4b7c15'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_contacts_contact_point_contact_order', 'contacts_contact_point',
                    ['contact_id', 'kind', 'position', 'id'], unique=False)
    # The new index starts with contact_id: the old one only cost writes.
    op.drop_index('ix_contacts_contact_point_contact_id', table_name='contacts_contact_point')


def downgrade() -> None:
    op.create_index('ix_contacts_contact_point_contact_id', 'contacts_contact_point', ['contact_id'], unique=False)
    op.drop_index('ix_contacts_contact_point_contact_order', table_name='contacts_contact_point')
