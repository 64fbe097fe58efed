"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28 12:34:26.470341
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('acme_account',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('issuer', AutoString(), nullable=False),
    sa.Column('directory', AutoString(), nullable=False),
    sa.Column('uri', AutoString(), nullable=True),
    sa.Column('key_path', AutoString(), nullable=False),
    sa.Column('contact', AutoString(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('updated_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('issuer', 'directory', name='uq_account_issuer_dir')
    )
    op.create_table('event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ts', UTCDateTime(), nullable=False),
    sa.Column('hostname', AutoString(), nullable=True),
    sa.Column('key_alg', AutoString(), nullable=True),
    sa.Column('kind', AutoString(), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_event_hostname'), ['hostname'], unique=False)
        batch_op.create_index(batch_op.f('ix_event_ts'), ['ts'], unique=False)

    op.create_table('job_state',
    sa.Column('name', AutoString(), nullable=False),
    sa.Column('last_run', UTCDateTime(), nullable=True),
    sa.Column('last_success', UTCDateTime(), nullable=True),
    sa.Column('next_run', UTCDateTime(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('node', AutoString(), nullable=True),
    sa.Column('running_until', UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('managed_cert',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('hostname', AutoString(), nullable=False),
    sa.Column('key_alg', AutoString(), nullable=False),
    sa.Column('key_type', AutoString(), nullable=False),
    sa.Column('names', AutoString(), nullable=False),
    sa.Column('issuer', AutoString(), nullable=False),
    sa.Column('state', AutoString(), nullable=False),
    sa.Column('current_version_id', sa.Integer(), nullable=True),
    sa.Column('pending_key_path', AutoString(), nullable=True),
    sa.Column('pending_csr', sa.Text(), nullable=True),
    sa.Column('pending_order_url', AutoString(), nullable=True),
    sa.Column('pending_since', UTCDateTime(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_error_permanent', sa.Boolean(), nullable=False),
    sa.Column('last_attempt_at', UTCDateTime(), nullable=True),
    sa.Column('last_result', AutoString(), nullable=True),
    sa.Column('next_retry_at', UTCDateTime(), nullable=True),
    sa.Column('renew_at', UTCDateTime(), nullable=True),
    sa.Column('ari_retry_at', UTCDateTime(), nullable=True),
    sa.Column('lease_owner', AutoString(), nullable=True),
    sa.Column('lease_until', UTCDateTime(), nullable=True),
    sa.Column('updated_at', UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('hostname', 'key_alg', name='uq_managed_host_alg')
    )
    with op.batch_alter_table('managed_cert', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_managed_cert_hostname'), ['hostname'], unique=False)

    op.create_table('probe_result',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('hostname', AutoString(), nullable=True),
    sa.Column('target', AutoString(), nullable=False),
    sa.Column('ts', UTCDateTime(), nullable=False),
    sa.Column('status', AutoString(), nullable=False),
    sa.Column('problems', sa.Text(), nullable=True),
    sa.Column('served_sha256', AutoString(), nullable=True),
    sa.Column('report', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('probe_result', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_probe_result_hostname'), ['hostname'], unique=False)

    op.create_table('calendar_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('managed_id', sa.Integer(), nullable=False),
    sa.Column('notifier', AutoString(), nullable=False),
    sa.Column('uid', AutoString(), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('method', AutoString(), nullable=False),
    sa.Column('version_key', AutoString(), nullable=False),
    sa.Column('dtstart', UTCDateTime(), nullable=True),
    sa.Column('updated_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['managed_id'], ['managed_cert.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('managed_id', 'notifier', name='uq_calendar_slot')
    )
    op.create_table('cert_version',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('managed_id', sa.Integer(), nullable=False),
    sa.Column('serial', AutoString(), nullable=False),
    sa.Column('subject_cn', AutoString(), nullable=True),
    sa.Column('names', AutoString(), nullable=False),
    sa.Column('key_type', AutoString(), nullable=False),
    sa.Column('key_alg', AutoString(), nullable=False),
    sa.Column('key_bits', sa.Integer(), nullable=False),
    sa.Column('not_before', UTCDateTime(), nullable=False),
    sa.Column('not_after', UTCDateTime(), nullable=False),
    sa.Column('sha256', AutoString(), nullable=False),
    sa.Column('issuer', AutoString(), nullable=False),
    sa.Column('issuer_cn', AutoString(), nullable=True),
    sa.Column('source', AutoString(), nullable=False),
    sa.Column('cert_path', AutoString(), nullable=False),
    sa.Column('chain_path', AutoString(), nullable=False),
    sa.Column('fullchain_path', AutoString(), nullable=False),
    sa.Column('key_path', AutoString(), nullable=False),
    sa.Column('order_url', AutoString(), nullable=True),
    sa.Column('ari_start', UTCDateTime(), nullable=True),
    sa.Column('ari_end', UTCDateTime(), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('revoked_at', UTCDateTime(), nullable=True),
    sa.Column('revoke_reason', AutoString(), nullable=True),
    sa.ForeignKeyConstraint(['managed_id'], ['managed_cert.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('cert_version', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cert_version_managed_id'), ['managed_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_cert_version_sha256'), ['sha256'], unique=False)

    op.create_table('order_attempt',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('managed_id', sa.Integer(), nullable=False),
    sa.Column('issuer', AutoString(), nullable=False),
    sa.Column('order_url', AutoString(), nullable=True),
    sa.Column('state', AutoString(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('node', AutoString(), nullable=True),
    sa.Column('started_at', UTCDateTime(), nullable=False),
    sa.Column('updated_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['managed_id'], ['managed_cert.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('order_attempt', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_order_attempt_managed_id'), ['managed_id'], unique=False)

    op.create_table('reminder',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('managed_id', sa.Integer(), nullable=False),
    sa.Column('version_key', AutoString(), nullable=False),
    sa.Column('kind', AutoString(), nullable=False),
    sa.Column('notifier', AutoString(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('sent_at', UTCDateTime(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('claimed_by', AutoString(), nullable=True),
    sa.Column('claimed_until', UTCDateTime(), nullable=True),
    sa.Column('payload', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['managed_id'], ['managed_cert.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('managed_id', 'version_key', 'kind', 'notifier', name='uq_reminder_once')
    )
    with op.batch_alter_table('reminder', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reminder_managed_id'), ['managed_id'], unique=False)

    op.create_table('deployment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('managed_id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('target', AutoString(), nullable=False),
    sa.Column('result', AutoString(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('started_at', UTCDateTime(), nullable=False),
    sa.Column('verified_at', UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['managed_id'], ['managed_cert.id'], ),
    sa.ForeignKeyConstraint(['version_id'], ['cert_version.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('deployment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deployment_managed_id'), ['managed_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('deployment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deployment_managed_id'))

    op.drop_table('deployment')
    with op.batch_alter_table('reminder', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reminder_managed_id'))

    op.drop_table('reminder')
    with op.batch_alter_table('order_attempt', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_order_attempt_managed_id'))

    op.drop_table('order_attempt')
    with op.batch_alter_table('cert_version', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cert_version_sha256'))
        batch_op.drop_index(batch_op.f('ix_cert_version_managed_id'))

    op.drop_table('cert_version')
    op.drop_table('calendar_event')
    with op.batch_alter_table('probe_result', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_probe_result_hostname'))

    op.drop_table('probe_result')
    with op.batch_alter_table('managed_cert', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_managed_cert_hostname'))

    op.drop_table('managed_cert')
    op.drop_table('job_state')
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_event_ts'))
        batch_op.drop_index(batch_op.f('ix_event_hostname'))

    op.drop_table('event')
    op.drop_table('acme_account')
