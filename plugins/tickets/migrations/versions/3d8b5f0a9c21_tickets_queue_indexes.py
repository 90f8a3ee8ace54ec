"""tickets: covering indexes for the queues (assignee, team, creation time, next due time)

Each replaces the one-column index on its first column: a queue's page is read in index
order and its count from the index alone, without visiting the ticket rows.

Revision ID: 3d8b5f0a9c21
Revises: 8c2f6b1e4a73
Create Date: 2026-11-25 18:00:00
"""
from alembic import op

revision = '3d8b5f0a9c21'
down_revision = '8c2f6b1e4a73'
branch_labels = None
depends_on = None

REPLACED = {
    'ix_tickets_ticket_assignee_id': ('ix_tickets_queue_assignee', ['assignee_id', 'created_at', 'team', 'status']),
    'ix_tickets_ticket_team': ('ix_tickets_queue_team', ['team', 'created_at', 'assignee_id', 'status']),
    'ix_tickets_ticket_created_at': ('ix_tickets_queue_created', ['created_at', 'status', 'team', 'assignee_id']),
    'ix_tickets_ticket_next_due_at': ('ix_tickets_queue_due', ['next_due_at', 'team', 'assignee_id']),
}


def upgrade() -> None:
    for old, (new, columns) in REPLACED.items():
        op.create_index(new, 'tickets_ticket', columns, unique=False)
        op.drop_index(old, table_name='tickets_ticket')


def downgrade() -> None:
    for old, (new, columns) in REPLACED.items():
        op.create_index(old, 'tickets_ticket', [columns[0]], unique=False)
        op.drop_index(new, table_name='tickets_ticket')
