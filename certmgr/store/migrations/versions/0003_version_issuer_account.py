"""Each certificate version keeps what issued it: issuer type, CA directory, ACME account, issuer DN

Renaming or removing an issuer in the config no longer relabels old certificates, and
revocation uses the account that ordered the certificate.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cert_version", schema=None) as batch_op:
        # rows from before: the type is known for imports; the directory and account stay unknown
        # (revocation then falls back to the configured issuer of that name)
        batch_op.add_column(sa.Column("issuer_type", AutoString(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("directory", AutoString(), nullable=True))
        batch_op.add_column(sa.Column("account_uri", AutoString(), nullable=True))
        batch_op.add_column(sa.Column("issuer_dn", AutoString(), nullable=True))
    op.execute("UPDATE cert_version SET issuer_type = 'manual' WHERE source = 'import'")


def downgrade() -> None:
    with op.batch_alter_table("cert_version", schema=None) as batch_op:
        batch_op.drop_column("issuer_dn")
        batch_op.drop_column("account_uri")
        batch_op.drop_column("directory")
        batch_op.drop_column("issuer_type")
