"""Mail TLS monitoring: the peers of sessions without TLS, per hour

Revision ID: 0007
Revises: 0005
Create Date: 2026-11-30
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("monitor_plain_peer",
    sa.Column("hour", AutoString(), nullable=False),
    sa.Column("direction", AutoString(), nullable=False),
    sa.Column("domain", AutoString(), nullable=False),
    sa.Column("host", AutoString(), nullable=False),
    sa.Column("address", AutoString(), nullable=False),
    sa.Column("sessions", sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint("hour", "direction", "domain", "host", "address")
    )


def downgrade() -> None:
    op.drop_table("monitor_plain_peer")
