"""contacts tables

Revision ID: f267c762d096
Revises: 
Create Date: 2026-11-24 02:32:02.167878
"""
from alembic import op
import sqlalchemy as sa
import kehu.db

revision = 'f267c762d096'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('contacts_custom_field',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=40), nullable=False),
    sa.Column('label', sa.JSON(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('choices', sa.JSON(), nullable=False),
    sa.Column('required', sa.Boolean(), nullable=False),
    sa.Column('show_in_list', sa.Boolean(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contacts_custom_field')),
    sa.UniqueConstraint('key', name=op.f('uq_contacts_custom_field_key'))
    )
    op.create_table('contacts_contact',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('company_id', sa.Integer(), nullable=True),
    sa.Column('position', sa.String(length=120), nullable=False),
    sa.Column('source', sa.String(length=80), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=True),
    sa.Column('stage', sa.String(length=20), nullable=False),
    sa.Column('province', sa.String(length=40), nullable=False),
    sa.Column('city', sa.String(length=40), nullable=False),
    sa.Column('district', sa.String(length=40), nullable=False),
    sa.Column('street_sealed', sa.LargeBinary(), nullable=True),
    sa.Column('address_detail_sealed', sa.LargeBinary(), nullable=True),
    sa.Column('notes', sa.Text(), nullable=False),
    sa.Column('preferences', sa.JSON(), nullable=False),
    sa.Column('custom', sa.JSON(), nullable=False),
    sa.Column('erased_at', kehu.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', kehu.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', kehu.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('updated_by_id', sa.Integer(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('row_key', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['company_id'], ['contacts_contact.id'], name=op.f('fk_contacts_contact_company_id_contacts_contact'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['owner_id'], ['kehu_user.id'], name=op.f('fk_contacts_contact_owner_id_kehu_user'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contacts_contact'))
    )
    with op.batch_alter_table('contacts_contact', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contacts_contact_city'), ['city'], unique=False)
        batch_op.create_index(batch_op.f('ix_contacts_contact_company_id'), ['company_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_contacts_contact_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_contacts_contact_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_contacts_contact_name'), ['name'], unique=False)
        batch_op.create_index(batch_op.f('ix_contacts_contact_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_contacts_contact_stage'), ['stage'], unique=False)
        batch_op.create_index(batch_op.f('ix_contacts_contact_updated_at'), ['updated_at'], unique=False)
    # Written by hand: autogenerate cannot compare expression indexes on SQLite.
    op.create_index('ix_contacts_contact_lower_name', 'contacts_contact', [sa.text('lower(name)')], unique=False)

    op.create_table('contacts_import_job',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('stored_name', sa.String(length=80), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('dry_run', sa.Boolean(), nullable=False),
    sa.Column('headers', sa.JSON(), nullable=False),
    sa.Column('mapping', sa.JSON(), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('processed', sa.Integer(), nullable=False),
    sa.Column('created', sa.Integer(), nullable=False),
    sa.Column('updated', sa.Integer(), nullable=False),
    sa.Column('unchanged', sa.Integer(), nullable=False),
    sa.Column('rejected', sa.Integer(), nullable=False),
    sa.Column('errors', sa.JSON(), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('created_at', kehu.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', kehu.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', kehu.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['kehu_user.id'], name=op.f('fk_contacts_import_job_user_id_kehu_user'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contacts_import_job'))
    )
    with op.batch_alter_table('contacts_import_job', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contacts_import_job_user_id'), ['user_id'], unique=False)

    op.create_table('contacts_saved_filter',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('query', sa.String(length=2000), nullable=False),
    sa.Column('created_at', kehu.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['kehu_user.id'], name=op.f('fk_contacts_saved_filter_user_id_kehu_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contacts_saved_filter'))
    )
    with op.batch_alter_table('contacts_saved_filter', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contacts_saved_filter_user_id'), ['user_id'], unique=False)

    op.create_table('contacts_activity',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('happened_at', kehu.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=True),
    sa.Column('created_at', kehu.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['kehu_user.id'], name=op.f('fk_contacts_activity_author_id_kehu_user'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts_contact.id'], name=op.f('fk_contacts_activity_contact_id_contacts_contact'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contacts_activity'))
    )
    with op.batch_alter_table('contacts_activity', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contacts_activity_contact_id'), ['contact_id'], unique=False)

    op.create_table('contacts_consent',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('purpose', sa.String(length=40), nullable=False),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('granted', sa.Boolean(), nullable=False),
    sa.Column('source', sa.String(length=80), nullable=False),
    sa.Column('at', kehu.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('recorded_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts_contact.id'], name=op.f('fk_contacts_consent_contact_id_contacts_contact'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contacts_consent'))
    )
    with op.batch_alter_table('contacts_consent', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contacts_consent_contact_id'), ['contact_id'], unique=False)

    op.create_table('contacts_contact_point',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('value_sealed', sa.LargeBinary(), nullable=False),
    sa.Column('lookup', sa.String(length=64), nullable=False),
    sa.Column('label', sa.String(length=20), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('row_key', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts_contact.id'], name=op.f('fk_contacts_contact_point_contact_id_contacts_contact'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contacts_contact_point'))
    )
    with op.batch_alter_table('contacts_contact_point', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contacts_contact_point_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index('ix_contacts_contact_point_kind_lookup', ['kind', 'lookup'], unique=False)

    op.create_table('contacts_revision',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=20), nullable=False),
    sa.Column('fields', sa.JSON(), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor_name', sa.String(length=120), nullable=False),
    sa.Column('at', kehu.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts_contact.id'], name=op.f('fk_contacts_revision_contact_id_contacts_contact'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contacts_revision'))
    )
    with op.batch_alter_table('contacts_revision', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contacts_revision_contact_id'), ['contact_id'], unique=False)

    op.create_table('contacts_tag',
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('tag', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts_contact.id'], name=op.f('fk_contacts_tag_contact_id_contacts_contact'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('contact_id', 'tag', name=op.f('pk_contacts_tag'))
    )
    with op.batch_alter_table('contacts_tag', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contacts_tag_tag'), ['tag'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('contacts_tag', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contacts_tag_tag'))

    op.drop_table('contacts_tag')
    with op.batch_alter_table('contacts_revision', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contacts_revision_contact_id'))

    op.drop_table('contacts_revision')
    with op.batch_alter_table('contacts_contact_point', schema=None) as batch_op:
        batch_op.drop_index('ix_contacts_contact_point_kind_lookup')
        batch_op.drop_index(batch_op.f('ix_contacts_contact_point_contact_id'))

    op.drop_table('contacts_contact_point')
    with op.batch_alter_table('contacts_consent', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contacts_consent_contact_id'))

    op.drop_table('contacts_consent')
    with op.batch_alter_table('contacts_activity', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contacts_activity_contact_id'))

    op.drop_table('contacts_activity')
    with op.batch_alter_table('contacts_saved_filter', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contacts_saved_filter_user_id'))

    op.drop_table('contacts_saved_filter')
    with op.batch_alter_table('contacts_import_job', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contacts_import_job_user_id'))

    op.drop_table('contacts_import_job')
    op.drop_index('ix_contacts_contact_lower_name', table_name='contacts_contact')
    with op.batch_alter_table('contacts_contact', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contacts_contact_updated_at'))
        batch_op.drop_index(batch_op.f('ix_contacts_contact_stage'))
        batch_op.drop_index(batch_op.f('ix_contacts_contact_owner_id'))
        batch_op.drop_index(batch_op.f('ix_contacts_contact_name'))
        batch_op.drop_index(batch_op.f('ix_contacts_contact_kind'))
        batch_op.drop_index(batch_op.f('ix_contacts_contact_created_at'))
        batch_op.drop_index(batch_op.f('ix_contacts_contact_company_id'))
        batch_op.drop_index(batch_op.f('ix_contacts_contact_city'))

    op.drop_table('contacts_contact')
    op.drop_table('contacts_custom_field')
