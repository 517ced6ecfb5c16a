"""send budget: one Telegram send rate shared by the instances on PostgreSQL

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 15:05:00

A revision of its own after the initial one: `make migration-initial` regenerates 0001 without
this table (storage.regen_initial leaves the later revisions' tables to them).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "send_budget",
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("next_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_send_budget")),
    )


def downgrade() -> None:
    op.drop_table("send_budget")
