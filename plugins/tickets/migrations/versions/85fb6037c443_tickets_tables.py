"""tickets tables

Revision ID: 85fb6037c443
Revises: 
Create Date: 2026-11-25 11:51:46.432133
"""
from alembic import op
import sqlalchemy as sa
import kehu.db

revision = '85fb6037c443'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('tickets_calendar_day',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.PrimaryKeyConstraint('day', name=op.f('pk_tickets_calendar_day'))
    )
    op.create_table('tickets_category',
    sa.Column('key', sa.String(length=40), nullable=False),
    sa.Column('label', sa.JSON(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_tickets_category'))
    )
    op.create_table('tickets_sequence',
    sa.Column('year', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('last', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('year', name=op.f('pk_tickets_sequence'))
    )
    op.create_table('tickets_sla_policy',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('priority', sa.String(length=10), nullable=False),
    sa.Column('category', sa.String(length=40), nullable=False),
    sa.Column('response_minutes', sa.Integer(), nullable=False),
    sa.Column('resolution_minutes', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tickets_sla_policy')),
    sa.UniqueConstraint('priority', 'category', name=op.f('uq_tickets_sla_policy_priority_category'))
    )
    op.create_table('tickets_status',
    sa.Column('key', sa.String(length=30), nullable=False),
    sa.Column('label', sa.JSON(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('initial', sa.Boolean(), nullable=False),
    sa.Column('pauses_sla', sa.Boolean(), nullable=False),
    sa.Column('resolved', sa.Boolean(), nullable=False),
    sa.Column('closed', sa.Boolean(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_tickets_status'))
    )
    op.create_table('tickets_agent',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('away', sa.Boolean(), nullable=False),
    sa.Column('email', sa.String(length=200), nullable=False),
    sa.Column('updated_at', kehu.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['kehu_user.id'], name=op.f('fk_tickets_agent_user_id_kehu_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_tickets_agent'))
    )
    op.create_table('tickets_team',
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=True),
    sa.Column('last_assigned_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['lead_id'], ['kehu_user.id'], name=op.f('fk_tickets_team_lead_id_kehu_user'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_tickets_team'))
    )
    op.create_table('tickets_transition',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('from_status', sa.String(length=30), nullable=False),
    sa.Column('to_status', sa.String(length=30), nullable=False),
    sa.Column('label', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['from_status'], ['tickets_status.key'], name=op.f('fk_tickets_transition_from_status_tickets_status'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['to_status'], ['tickets_status.key'], name=op.f('fk_tickets_transition_to_status_tickets_status'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tickets_transition')),
    sa.UniqueConstraint('from_status', 'to_status', name=op.f('uq_tickets_transition_from_status_to_status'))
    )
    op.create_table('tickets_ticket',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=20), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=True),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('category', sa.String(length=40), nullable=False),
    sa.Column('priority', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=30), nullable=False),
    sa.Column('assignee_id', sa.Integer(), nullable=True),
    sa.Column('team', sa.String(length=80), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', kehu.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', kehu.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('first_response_at', kehu.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('resolved_at', kehu.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('closed_at', kehu.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('response_target_minutes', sa.Integer(), nullable=True),
    sa.Column('resolution_target_minutes', sa.Integer(), nullable=True),
    sa.Column('response_due_at', kehu.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('resolution_due_at', kehu.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('rating', sa.Integer(), nullable=True),
    sa.Column('rating_comment', sa.Text(), nullable=False),
    sa.Column('rated_at', kehu.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('portal_key', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['assignee_id'], ['kehu_user.id'], name=op.f('fk_tickets_ticket_assignee_id_kehu_user'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts_contact.id'], name=op.f('fk_tickets_ticket_contact_id_contacts_contact'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tickets_ticket')),
    sa.UniqueConstraint('number', name=op.f('uq_tickets_ticket_number'))
    )
    with op.batch_alter_table('tickets_ticket', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tickets_ticket_assignee_id'), ['assignee_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_tickets_ticket_category'), ['category'], unique=False)
        batch_op.create_index(batch_op.f('ix_tickets_ticket_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_tickets_ticket_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_tickets_ticket_priority'), ['priority'], unique=False)
        batch_op.create_index(batch_op.f('ix_tickets_ticket_resolution_due_at'), ['resolution_due_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_tickets_ticket_response_due_at'), ['response_due_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_tickets_ticket_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_tickets_ticket_team'), ['team'], unique=False)

    op.create_table('tickets_comment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('author_kind', sa.String(length=10), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=True),
    sa.Column('public', sa.Boolean(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', kehu.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets_ticket.id'], name=op.f('fk_tickets_comment_ticket_id_tickets_ticket'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tickets_comment'))
    )
    with op.batch_alter_table('tickets_comment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tickets_comment_ticket_id'), ['ticket_id'], unique=False)

    op.create_table('tickets_history',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('at', kehu.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets_ticket.id'], name=op.f('fk_tickets_history_ticket_id_tickets_ticket'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tickets_history'))
    )
    with op.batch_alter_table('tickets_history', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tickets_history_ticket_id'), ['ticket_id'], unique=False)

    op.create_table('tickets_notification',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('comment_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('channels', sa.JSON(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('created_at', kehu.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', kehu.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets_ticket.id'], name=op.f('fk_tickets_notification_ticket_id_tickets_ticket'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tickets_notification'))
    )
    with op.batch_alter_table('tickets_notification', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tickets_notification_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_tickets_notification_ticket_id'), ['ticket_id'], unique=False)

    op.create_table('tickets_sla_alert',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('created_at', kehu.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets_ticket.id'], name=op.f('fk_tickets_sla_alert_ticket_id_tickets_ticket'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tickets_sla_alert')),
    sa.UniqueConstraint('ticket_id', 'kind', name=op.f('uq_tickets_sla_alert_ticket_id_kind'))
    )
    op.create_table('tickets_sla_pause',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('started_at', kehu.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', kehu.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets_ticket.id'], name=op.f('fk_tickets_sla_pause_ticket_id_tickets_ticket'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tickets_sla_pause'))
    )
    with op.batch_alter_table('tickets_sla_pause', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tickets_sla_pause_ticket_id'), ['ticket_id'], unique=False)

    op.create_table('tickets_attachment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('comment_id', sa.Integer(), nullable=True),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('stored_name', sa.String(length=80), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('public', sa.Boolean(), nullable=False),
    sa.Column('by_customer', sa.Boolean(), nullable=False),
    sa.Column('uploaded_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', kehu.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['comment_id'], ['tickets_comment.id'], name=op.f('fk_tickets_attachment_comment_id_tickets_comment'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets_ticket.id'], name=op.f('fk_tickets_attachment_ticket_id_tickets_ticket'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tickets_attachment')),
    sa.UniqueConstraint('stored_name', name=op.f('uq_tickets_attachment_stored_name'))
    )
    with op.batch_alter_table('tickets_attachment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tickets_attachment_ticket_id'), ['ticket_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('tickets_attachment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tickets_attachment_ticket_id'))

    op.drop_table('tickets_attachment')
    with op.batch_alter_table('tickets_sla_pause', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tickets_sla_pause_ticket_id'))

    op.drop_table('tickets_sla_pause')
    op.drop_table('tickets_sla_alert')
    with op.batch_alter_table('tickets_notification', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tickets_notification_ticket_id'))
        batch_op.drop_index(batch_op.f('ix_tickets_notification_status'))

    op.drop_table('tickets_notification')
    with op.batch_alter_table('tickets_history', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tickets_history_ticket_id'))

    op.drop_table('tickets_history')
    with op.batch_alter_table('tickets_comment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tickets_comment_ticket_id'))

    op.drop_table('tickets_comment')
    with op.batch_alter_table('tickets_ticket', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tickets_ticket_team'))
        batch_op.drop_index(batch_op.f('ix_tickets_ticket_status'))
        batch_op.drop_index(batch_op.f('ix_tickets_ticket_response_due_at'))
        batch_op.drop_index(batch_op.f('ix_tickets_ticket_resolution_due_at'))
        batch_op.drop_index(batch_op.f('ix_tickets_ticket_priority'))
        batch_op.drop_index(batch_op.f('ix_tickets_ticket_created_at'))
        batch_op.drop_index(batch_op.f('ix_tickets_ticket_contact_id'))
        batch_op.drop_index(batch_op.f('ix_tickets_ticket_category'))
        batch_op.drop_index(batch_op.f('ix_tickets_ticket_assignee_id'))

    op.drop_table('tickets_ticket')
    op.drop_table('tickets_transition')
    op.drop_table('tickets_team')
    op.drop_table('tickets_agent')
    op.drop_table('tickets_status')
    op.drop_table('tickets_sla_policy')
    op.drop_table('tickets_sequence')
    op.drop_table('tickets_category')
    op.drop_table('tickets_calendar_day')
