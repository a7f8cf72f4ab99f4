"""Groups per user: stored, no longer implied by the approver role.

Until now every approver and admin was handed the `sre` group by the code, so an
approval policy asking for another group (`approval.groups_by_action`) could never be
met by anyone, and `sre` by everyone. Groups now live in `user_groups`, one row per
(user, group), and a principal holds exactly its own.

Upgrade keeps what people effectively had: every existing approver and admin gets
the `sre` group, so an upgrade does not silently lock every approver out of the
actions the default policy guards with `sre`. Viewers get nothing (their groups never
counted). Remove the group from those who should not hold it with
`twinops users groups NAME --remove sre`.

Downgrade drops the table, and with it every group given since; the code of 0003
implies `sre` again for approvers and admins.

Revision ID: 0004_user_groups
Revises: 0003_audit_no_replace
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_user_groups"
down_revision = "0003_audit_no_replace"
branch_labels = None
depends_on = None

# What the code of 0003 and before implied for every approver and admin (frozen here,
# whatever the code says later).
_IMPLIED_BEFORE = "sre"


def upgrade() -> None:
    """Create user_groups; give existing approvers and admins the group they effectively held."""
    op.create_table(
        "user_groups",
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey("users.id", name="fk_user_groups_user_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("group_name", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "group_name", name="pk_user_groups"),
    )
    op.execute(
        sa.text(
            "INSERT INTO user_groups (user_id, group_name) "
            "SELECT id, :group FROM users WHERE role IN ('approver', 'admin')"
        ).bindparams(group=_IMPLIED_BEFORE)
    )


def downgrade() -> None:
    """Drop user_groups (the groups are lost; 0003's code implies `sre` again)."""
    op.drop_table("user_groups")
