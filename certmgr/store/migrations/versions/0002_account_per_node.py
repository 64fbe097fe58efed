"""ACME accounts per node: each machine keeps its account key in its own state dir

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("acme_account", schema=None) as batch_op:
        # rows from before belong to the machine that wrote them; it finds them again by name
        batch_op.add_column(sa.Column("node", AutoString(), nullable=False, server_default=""))
        batch_op.drop_constraint("uq_account_issuer_dir", type_="unique")
        batch_op.create_unique_constraint("uq_account_issuer_dir_node", ["issuer", "directory", "node"])


def downgrade() -> None:
    with op.batch_alter_table("acme_account", schema=None) as batch_op:
        batch_op.drop_constraint("uq_account_issuer_dir_node", type_="unique")
        batch_op.drop_column("node")
        batch_op.create_unique_constraint("uq_account_issuer_dir", ["issuer", "directory"])
