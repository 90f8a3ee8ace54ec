"""tickets: next_due_at, the sooner of a ticket's due moments, for the breaching queue

Revision ID: 5e7a1c9d2f40
Revises: 2b188d17aa2d
Create Date: 2026-11-25 16:30:00
"""
from alembic import op
import sqlalchemy as sa
import kehu.db

revision = '5e7a1c9d2f40'
down_revision = '2b188d17aa2d'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tickets_ticket', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_due_at', kehu.db.UTCDateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_tickets_ticket_next_due_at'), ['next_due_at'], unique=False)
    # The sooner of the two (both are stored in UTC, so comparing them is comparing moments).
    op.execute("UPDATE tickets_ticket SET next_due_at = CASE"
               " WHEN response_due_at IS NULL THEN resolution_due_at"
               " WHEN resolution_due_at IS NULL THEN response_due_at"
               " WHEN response_due_at < resolution_due_at THEN response_due_at ELSE resolution_due_at END")


def downgrade() -> None:
    with op.batch_alter_table('tickets_ticket', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tickets_ticket_next_due_at'))
        batch_op.drop_column('next_due_at')
