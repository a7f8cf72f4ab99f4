"""SQLAlchemy 2 models of the two ledger tables (the schema itself is created by migration 0001)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["AuditEventRow", "Base", "TreeHeadRow"]

_SEQ = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Declarative base of the audit tables."""


class AuditEventRow(Base):
    """One log entry. `target_nodes` and `payload` hold canonical JSON text; `time` a fixed-width UTC string."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(_SEQ, primary_key=True, autoincrement=False)
    event_id: Mapped[str] = mapped_column(String(200), unique=True)
    time: Mapped[str] = mapped_column(String(27))
    remediation_id: Mapped[str] = mapped_column(String(200))
    workflow_id: Mapped[str | None] = mapped_column(String(400))
    run_id: Mapped[str | None] = mapped_column(String(200))
    actor: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40))
    target_nodes: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    leaf_hash: Mapped[str] = mapped_column(String(64))


class TreeHeadRow(Base):
    """One signed tree head: the checkpoint note plus its fields, duplicated for querying."""

    __tablename__ = "tree_heads"

    tree_size: Mapped[int] = mapped_column(_SEQ, primary_key=True, autoincrement=False)
    root_hash: Mapped[str] = mapped_column(String(64))
    time: Mapped[str] = mapped_column(String(27))
    checkpoint: Mapped[str] = mapped_column(Text)
