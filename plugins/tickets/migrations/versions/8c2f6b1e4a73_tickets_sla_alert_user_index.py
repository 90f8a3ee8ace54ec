"""tickets: index the SLA alerts by recipient and time (the queue page reads a user's latest)

Revision ID: 8c2f6b1e4a73
Revises: 5e7a1c9d2f40
Create Date: 2026-11-25 16:15:00
"""
from alembic import op

revision = '8c2f6b1e4a73'
down_revision = '5e7a1c9d2f40'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_tickets_sla_alert_user_created', 'tickets_sla_alert', ['user_id', 'created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_tickets_sla_alert_user_created', table_name='tickets_sla_alert')
