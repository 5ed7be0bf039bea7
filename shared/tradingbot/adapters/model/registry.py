"""Record exported model versions in ``model_versions`` and pick the active one.

Thin wrappers over :mod:`tradingbot.adapters.persistence.repositories.models` that take a
:class:`~tradingbot.adapters.model.artifact.ModelMetadata` (what an export writes next to the ONNX
file), so the repositories need not know the artifact format. Same conventions: each function takes
a Session inside the caller's transaction and never commits; a duplicate (name, version) is
answered, not raised.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tradingbot.adapters.model.artifact import ModelMetadata
from tradingbot.adapters.persistence import repositories as repo

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from tradingbot.adapters.persistence.models import ModelVersion


def register_version(
    session: Session, metadata: ModelMetadata, artifact_uri: str, *, activate: bool = True
) -> tuple[ModelVersion, bool]:
    """Insert the version (returns it and True), or return the existing row and False; activating
    it deactivates the name's other versions in the same transaction."""
    return repo.register_model_version(
        session, name=metadata.name, version=metadata.version, artifact_uri=artifact_uri,
        sha256=metadata.sha256, metrics=metadata.metrics, activate=activate,
    )  # fmt: skip


def active_version(session: Session, name: str) -> ModelVersion | None:
    return repo.active_model_version(session, name)


def list_versions(session: Session, name: str | None = None) -> Sequence[ModelVersion]:
    return repo.list_model_versions(session, name)
