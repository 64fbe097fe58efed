"""DANE rollover and MTA-STS state in the store, with a lease per MTA and per domain

Before, the state was JSON files under <state_dir>/dane/ and <state_dir>/mta-sts/; they are
imported on first use (certmgr.store.dns) and renamed *.imported.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table, key in (("dane_state", "hostname"), ("mta_sts_state", "domain")):
        op.create_table(table,
        sa.Column(key, AutoString(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("lease_owner", AutoString(), nullable=True),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint(key)
        )
    op.create_table("dane_next_key",
    sa.Column("hostname", AutoString(), nullable=False),
    sa.Column("key_type", AutoString(), nullable=False),
    sa.Column("path", AutoString(), nullable=False),
    sa.Column("spki_sha256", AutoString(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint("hostname", "key_type")
    )


def downgrade() -> None:
    op.drop_table("dane_next_key")
    op.drop_table("mta_sts_state")
    op.drop_table("dane_state")
