"""model_versions on real PostgreSQL: register, idempotent re-register, one active version per name."""

from __future__ import annotations

import dataclasses

from sqlalchemy import Engine

from tradingbot.adapters.model.artifact import ModelMetadata
from tradingbot.adapters.model.registry import active_version, list_versions, register_version
from tradingbot.adapters.persistence.db import session_scope


def _meta(version: str, name: str = "lstm-btcusdt-1h") -> ModelMetadata:
    return ModelMetadata(
        name=name, version=version, created_at="2026-01-01T00:00:00Z", feature_set="fs", features=["a"], window=60,
        min_candles=259, interval="1h", scaler={"mean": [0.0], "std": [1.0]}, target={"scale": 0.01},
        input_name="window", output_name="y", training_span={}, architecture={},
        metrics={"walk_forward_accuracy": 0.5}, sha256="ab" * 32,
    )  # fmt: skip


def test_register_activate_and_list(db: Engine) -> None:
    with session_scope(db) as s:
        row, created = register_version(s, _meta("v1"), "/models/v1")
        assert created and row.is_active and row.metrics == {"walk_forward_accuracy": 0.5}
    with session_scope(db) as s:
        _, created = register_version(s, _meta("v1"), "/models/v1")
        assert not created  # same (name, version): answered, not raised
        register_version(s, _meta("v2"), "s3://bucket/models/v2")
        register_version(s, _meta("v1", name="other"), "/other/v1", activate=False)
    with session_scope(db) as s:
        active = active_version(s, "lstm-btcusdt-1h")
        assert active is not None and active.version == "v2" and active.artifact_uri.startswith("s3://")
        assert active_version(s, "other") is None
        assert [(r.name, r.version, r.is_active) for r in list_versions(s)] == [
            ("lstm-btcusdt-1h", "v1", False),
            ("lstm-btcusdt-1h", "v2", True),
            ("other", "v1", False),
        ]
        # re-activating an old version moves the flag back (rollback of a bad model)
        register_version(s, dataclasses.replace(_meta("v1")), "/models/v1")
    with session_scope(db) as s:
        active = active_version(s, "lstm-btcusdt-1h")
        assert active is not None and active.version == "v1"
