"""tracking: school calendars, deadline rules, computed deadlines, digests; audit search indexes

Deadlines are kept per transfer so the caseworker dashboard filters and sorts in SQL; the two
new audit_events indexes serve the audit viewer's keyset pages (organisation, newest first) and
"last access" look-ups (object, newest first).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 04:05:29.841983

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('deadline_rules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('authority_id', sa.Integer(), nullable=False),
    sa.Column('category', sa.Enum('PEP', 'COMMON_TRANSFER_FILE', 'EDUCATIONAL_RECORD', 'CHILD_PROTECTION', 'SEN_EHCP', 'CHRONOLOGY', 'OTHER', name='documentcategory', native_enum=False, length=32), nullable=False),
    sa.Column('school_days', sa.Integer(), nullable=False),
    sa.CheckConstraint('school_days BETWEEN 1 AND 60', name=op.f('ck_deadline_rules_school_days_range')),
    sa.ForeignKeyConstraint(['authority_id'], ['organisations.id'], name=op.f('fk_deadline_rules_authority_id_organisations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deadline_rules')),
    sa.UniqueConstraint('authority_id', 'category', name='uq_deadline_rules_authority_category')
    )
    op.create_table('digest_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('digest_on', sa.Date(), nullable=False),
    sa.Column('overdue', sa.Integer(), nullable=False),
    sa.Column('due_soon', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_digest_deliveries_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_digest_deliveries')),
    sa.UniqueConstraint('user_id', 'digest_on', name='uq_digest_deliveries_user_day')
    )
    op.create_table('school_calendars',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('authority_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=10), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('updated_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['authority_id'], ['organisations.id'], name=op.f('fk_school_calendars_authority_id_organisations')),
    sa.ForeignKeyConstraint(['updated_by_id'], ['users.id'], name=op.f('fk_school_calendars_updated_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_school_calendars')),
    sa.UniqueConstraint('authority_id', name=op.f('uq_school_calendars_authority_id'))
    )
    op.create_table('calendar_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('calendar_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('TERM', 'CLOSURE', name='calendarentrykind', native_enum=False, length=10), nullable=False),
    sa.Column('starts_on', sa.Date(), nullable=False),
    sa.Column('ends_on', sa.Date(), nullable=False),
    sa.Column('summary', sa.String(length=200), nullable=False),
    sa.CheckConstraint('ends_on >= starts_on', name=op.f('ck_calendar_entries_ends_after_start')),
    sa.ForeignKeyConstraint(['calendar_id'], ['school_calendars.id'], name=op.f('fk_calendar_entries_calendar_id_school_calendars'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calendar_entries'))
    )
    with op.batch_alter_table('calendar_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_calendar_entries_calendar_id'), ['calendar_id'], unique=False)

    op.create_table('transfer_deadlines',
    sa.Column('transfer_id', sa.Integer(), nullable=False),
    sa.Column('responsible_authority_id', sa.Integer(), nullable=True),
    sa.Column('calendar_authority_id', sa.Integer(), nullable=True),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('school_days', sa.Integer(), nullable=False),
    sa.Column('category', sa.Enum('PEP', 'COMMON_TRANSFER_FILE', 'EDUCATIONAL_RECORD', 'CHILD_PROTECTION', 'SEN_EHCP', 'CHRONOLOGY', 'OTHER', name='documentcategory', native_enum=False, length=32), nullable=False),
    sa.Column('computed_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['calendar_authority_id'], ['organisations.id'], name=op.f('fk_transfer_deadlines_calendar_authority_id_organisations')),
    sa.ForeignKeyConstraint(['responsible_authority_id'], ['organisations.id'], name=op.f('fk_transfer_deadlines_responsible_authority_id_organisations')),
    sa.ForeignKeyConstraint(['transfer_id'], ['transfers.id'], name=op.f('fk_transfer_deadlines_transfer_id_transfers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('transfer_id', name=op.f('pk_transfer_deadlines'))
    )
    with op.batch_alter_table('transfer_deadlines', schema=None) as batch_op:
        batch_op.create_index('ix_transfer_deadlines_authority_due', ['responsible_authority_id', 'due_on'], unique=False)
        batch_op.create_index('ix_transfer_deadlines_calendar_authority', ['calendar_authority_id'], unique=False)

    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index('ix_audit_events_actor_org_sequence', ['actor_organisation_id', 'sequence'], unique=False)
        batch_op.create_index('ix_audit_events_object_sequence', ['object_type', 'object_id', 'sequence'], unique=False)



def downgrade():
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_object_sequence')
        batch_op.drop_index('ix_audit_events_actor_org_sequence')

    with op.batch_alter_table('transfer_deadlines', schema=None) as batch_op:
        batch_op.drop_index('ix_transfer_deadlines_calendar_authority')
        batch_op.drop_index('ix_transfer_deadlines_authority_due')

    op.drop_table('transfer_deadlines')
    with op.batch_alter_table('calendar_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_calendar_entries_calendar_id'))

    op.drop_table('calendar_entries')
    op.drop_table('school_calendars')
    op.drop_table('digest_deliveries')
    op.drop_table('deadline_rules')
