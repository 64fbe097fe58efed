"""Mail TLS monitoring: collector positions, hourly session counts, TLS reports

The collector's read position and the counts it adds are rows of the same
database, written in one transaction (exactly once across crashes and restarts).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("monitor_position",
    sa.Column("source", AutoString(), nullable=False),
    sa.Column("position", sa.Text(), nullable=False),
    sa.Column("unparsed", sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint("source")
    )
    op.create_table("monitor_sessions",
    sa.Column("hour", AutoString(), nullable=False),
    sa.Column("direction", AutoString(), nullable=False),
    sa.Column("domain", AutoString(), nullable=False),
    sa.Column("level", AutoString(), nullable=False),
    sa.Column("protocol", AutoString(), nullable=False),
    sa.Column("sessions", sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint("hour", "direction", "domain", "level", "protocol")
    )
    op.create_table("monitor_tlsrpt",
    sa.Column("report_id", AutoString(), nullable=False),
    sa.Column("organization", AutoString(), nullable=False),
    sa.Column("start", UTCDateTime(), nullable=False),
    sa.Column("end", UTCDateTime(), nullable=False),
    sa.Column("received", UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint("report_id")
    )
    with op.batch_alter_table("monitor_tlsrpt", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_monitor_tlsrpt_end"), ["end"], unique=False)
    op.create_table("monitor_tlsrpt_result",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("report_id", AutoString(), nullable=False),
    sa.Column("policy_type", AutoString(), nullable=False),
    sa.Column("policy_domain", AutoString(), nullable=False),
    sa.Column("result_type", AutoString(), nullable=False),
    sa.Column("sessions", sa.Integer(), nullable=False),
    sa.Column("mx_host", AutoString(), nullable=False),
    sa.ForeignKeyConstraint(["report_id"], ["monitor_tlsrpt.report_id"]),
    sa.PrimaryKeyConstraint("id")
    )
    with op.batch_alter_table("monitor_tlsrpt_result", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_monitor_tlsrpt_result_report_id"), ["report_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("monitor_tlsrpt_result", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_monitor_tlsrpt_result_report_id"))
    op.drop_table("monitor_tlsrpt_result")
    with op.batch_alter_table("monitor_tlsrpt", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_monitor_tlsrpt_end"))
    op.drop_table("monitor_tlsrpt")
    op.drop_table("monitor_sessions")
    op.drop_table("monitor_position")
