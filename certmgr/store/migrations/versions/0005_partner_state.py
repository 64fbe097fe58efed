"""Partner TLS watch: the last check of each partner and its open degradation alert

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("partner_state",
    sa.Column("domain", AutoString(), nullable=False),
    sa.Column("require", AutoString(), nullable=False),
    sa.Column("status", AutoString(), nullable=False),
    sa.Column("meets", sa.Boolean(), nullable=False),
    sa.Column("enforced", sa.Boolean(), nullable=False),
    sa.Column("problems", sa.Text(), nullable=False),
    sa.Column("addresses", sa.Text(), nullable=False),
    sa.Column("checked_at", UTCDateTime(), nullable=False),
    sa.Column("alerted_at", UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint("domain")
    )


def downgrade() -> None:
    op.drop_table("partner_state")
