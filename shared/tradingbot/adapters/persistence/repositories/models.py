"""Model versions: the ``model_versions`` registry of exported models, one active version per name.

Repository functions: the only SQL the product runs. Each takes a Session inside a transaction
(``session_scope``) and never commits itself. A duplicate (name, version) is answered, not raised,
via ``INSERT ... ON CONFLICT DO NOTHING``: re-registering an export is a normal retry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from tradingbot.adapters.persistence.models import ModelVersion


def register_model_version(
    session: Session,
    *,
    name: str,
    version: str,
    artifact_uri: str,
    sha256: str,
    metrics: dict[str, Any],
    activate: bool = True,
) -> tuple[ModelVersion, bool]:
    """Insert the version (returns it and True), or return the existing row and False.

    Activating deactivates the name's other versions first, in the same transaction: the partial
    unique index allows one active version per name, and the predictor must never see two."""
    if activate:
        session.execute(
            update(ModelVersion).where(ModelVersion.name == name, ModelVersion.is_active).values(is_active=False)
        )
    stmt = (
        insert(ModelVersion)
        .values(
            name=name, version=version, artifact_uri=artifact_uri, sha256=sha256, metrics=metrics, is_active=activate
        )
        .on_conflict_do_nothing(index_elements=["name", "version"])
        .returning(ModelVersion.id)
    )
    new_id = session.execute(stmt).scalar_one_or_none()
    if new_id is not None:
        return session.get_one(ModelVersion, new_id), True
    row = session.execute(
        select(ModelVersion).where(ModelVersion.name == name, ModelVersion.version == version)
    ).scalar_one()
    if activate:
        row.is_active = True
    return row, False


def active_model_version(session: Session, name: str) -> ModelVersion | None:
    return session.execute(
        select(ModelVersion).where(ModelVersion.name == name, ModelVersion.is_active)
    ).scalar_one_or_none()


def list_model_versions(session: Session, name: str | None = None) -> Sequence[ModelVersion]:
    """Oldest first within each name, names in order."""
    stmt = select(ModelVersion).order_by(ModelVersion.name, ModelVersion.created_at, ModelVersion.id)
    if name is not None:
        stmt = stmt.where(ModelVersion.name == name)
    return session.execute(stmt).scalars().all()
