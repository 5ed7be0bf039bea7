"""Record exported model versions in ``model_versions`` and pick the active one.

Same conventions as :mod:`tradingbot.adapters.persistence.repositories`: each function takes a Session inside
the caller's transaction and never commits; a duplicate (name, version) is answered, not raised,
via ``INSERT ... ON CONFLICT DO NOTHING``.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from tradingbot.adapters.model.artifact import ModelMetadata
from tradingbot.adapters.persistence.models import ModelVersion


def register_version(
    session: Session, metadata: ModelMetadata, artifact_uri: str, *, activate: bool = True
) -> tuple[ModelVersion, bool]:
    """Insert the version (returns it and True), or return the existing row and False.

    Activating deactivates the name's other versions first, in the same transaction: the partial
    unique index allows one active version per name, and the predictor must never see two."""
    if activate:
        session.execute(
            update(ModelVersion)
            .where(ModelVersion.name == metadata.name, ModelVersion.is_active)
            .values(is_active=False)
        )
    stmt = (
        insert(ModelVersion)
        .values(
            name=metadata.name,
            version=metadata.version,
            artifact_uri=artifact_uri,
            sha256=metadata.sha256,
            metrics=metadata.metrics,
            is_active=activate,
        )
        .on_conflict_do_nothing(index_elements=["name", "version"])
        .returning(ModelVersion.id)
    )
    new_id = session.execute(stmt).scalar_one_or_none()
    if new_id is not None:
        return session.get_one(ModelVersion, new_id), True
    row = session.execute(
        select(ModelVersion).where(ModelVersion.name == metadata.name, ModelVersion.version == metadata.version)
    ).scalar_one()
    if activate:
        row.is_active = True
    return row, False


def active_version(session: Session, name: str) -> ModelVersion | None:
    return session.execute(
        select(ModelVersion).where(ModelVersion.name == name, ModelVersion.is_active)
    ).scalar_one_or_none()


def list_versions(session: Session, name: str | None = None) -> Sequence[ModelVersion]:
    stmt = select(ModelVersion).order_by(ModelVersion.name, ModelVersion.created_at, ModelVersion.id)
    if name is not None:
        stmt = stmt.where(ModelVersion.name == name)
    return session.execute(stmt).scalars().all()
