"""Export a trained Keras model to ONNX with tf2onnx, and refuse to write it unless it agrees.

Conversion goes through a ``tf.function`` with a fixed input signature (``tf2onnx.convert.
from_function``) rather than ``from_keras``: it is the path tf2onnx supports for Keras 3 models,
and it pins the graph's input name and shape ((batch, window, n_features), float32).

The metadata names the bar interval and the symbol family the model was trained on (``interval``,
``symbols``); the Predict stage runs the model on nothing else and otherwise answers ``model:
unavailable`` with the reason. An export without them is refused.

Parity: the ONNX graph and the Keras model (called with ``training=False``: no dropout) score the
same held-out windows (the validation tail, which the weights were not fitted on); the maximum
absolute difference of the network outputs must be below ``PARITY_TOLERANCE`` or nothing is written.
"""

from __future__ import annotations

import importlib.metadata
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tradingbot.adapters.model.artifact import (
    DEFAULT_NAME,
    ArtifactError,
    ModelMetadata,
    new_version,
    utc_now_iso,
    write_artifact,
)
from tradingbot.domain import features as ft
from tradingbot_training.tf_setup import tensorflow
from tradingbot_training.train import TrainedModel

PARITY_TOLERANCE = 1e-4
INPUT_NAME = "window"
OUTPUT_NAME = "next_return_scaled"
OPSET = 17
# the unified timeframes an alert can map to (tradingbot.domain.timeframes) that interval_name names
KNOWN_INTERVALS = ("1m", "5m", "15m", "30m", "1h", "4h", "1d")


class ParityError(RuntimeError):
    """ONNX and Keras disagree beyond the tolerance: the artifact is not written."""


@dataclass(frozen=True)
class ExportResult:
    directory: Path
    metadata: ModelMetadata
    max_abs_diff: float
    parity_windows: int


def to_onnx(model: Any, window: int, n_features: int) -> bytes:
    tf = tensorflow()
    import tf2onnx

    spec = (tf.TensorSpec((None, window, n_features), tf.float32, name=INPUT_NAME),)

    @tf.function(input_signature=spec)
    def serve(x: Any) -> dict[str, Any]:
        return {OUTPUT_NAME: model(x, training=False)}

    proto, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=OPSET)
    data: bytes = proto.SerializeToString()
    return data


def parity(onnx_bytes: bytes, model: Any, windows: np.ndarray) -> float:
    """Max |ONNX - Keras| over ``windows`` (already scaled float32)."""
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT_NAME], {INPUT_NAME: windows})[0].reshape(-1)
    want = model(windows, training=False).numpy().reshape(-1)
    if got.shape != want.shape:
        raise ParityError(f"ONNX returned {got.shape[0]} values for {want.shape[0]} windows")
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    return float(np.max(diff)) if diff.size else float("nan")


def export_trained(
    trained: TrainedModel,
    artifacts_dir: Path,
    *,
    name: str = DEFAULT_NAME,
    version: str | None = None,
    metrics: dict[str, Any] | None = None,
    parity_windows: int = 256,
    tolerance: float = PARITY_TOLERANCE,
    onnx_bytes: bytes | None = None,
) -> ExportResult:
    """Convert, check parity on held-out windows, then write ``artifacts_dir/<version>/``.

    ``onnx_bytes`` lets a test hand in a tampered graph to prove the refusal."""
    cfg = trained.config
    # what Predict checks an alert against (pipeline/predict.py): without them the model would never run
    if not trained.symbols:
        raise ArtifactError(
            "symbols: the symbol family the model was trained on is not known (train_model(symbols=...), "
            "`model train --symbols BTCUSDT`); artifact not written"
        )
    if trained.interval not in KNOWN_INTERVALS:
        raise ArtifactError(
            f"interval: the candles are {trained.interval} apart, not one of {', '.join(KNOWN_INTERVALS)}; "
            "artifact not written"
        )
    n_feat = trained.features.shape[1]
    graph = onnx_bytes if onnx_bytes is not None else to_onnx(trained.model, cfg.window, n_feat)
    held_out = trained.val_ends[-parity_windows:]
    x = trained.scaled_windows(held_out)
    max_diff = parity(graph, trained.model, x)
    if not max_diff < tolerance:  # also catches NaN
        raise ParityError(
            f"ONNX and Keras disagree on {len(held_out)} held-out windows: max abs diff {max_diff:.3g} "
            f">= {tolerance:g}; artifact not written"
        )
    version = version or new_version()
    meta = ModelMetadata(
        name=name,
        version=version,
        created_at=utc_now_iso(),
        feature_set=ft.FEATURE_SET,
        features=list(ft.FEATURES),
        window=cfg.window,
        min_candles=ft.WARMUP_BARS + cfg.window,
        interval=trained.interval,
        scaler=trained.scaler.to_dict(),
        target={"kind": "next_log_return", "scale": trained.target_scale},
        input_name=INPUT_NAME,
        output_name=OUTPUT_NAME,
        training_span=trained.training_span(),
        architecture={
            **cfg.to_dict(),
            "parameters": int(trained.model.count_params()),
            "epochs_run": len(trained.history.get("loss", [])),
            "best_val_loss": min(trained.history.get("val_loss", [float("nan")])),
        },
        metrics={**(metrics or {}), "parity_max_abs_diff": max_diff, "parity_windows": len(held_out)},
        frameworks=_versions(),
        symbols=list(trained.symbols),
    )
    directory = write_artifact(Path(artifacts_dir) / version, graph, meta)
    written = json.loads((directory / "metadata.json").read_text())
    return ExportResult(directory, ModelMetadata.from_dict(written), max_diff, len(held_out))


def _versions() -> dict[str, str]:
    out = {}
    for dist in ("tensorflow", "tensorflow-cpu", "keras", "tf2onnx", "onnx", "onnxruntime", "numpy"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    out["opset"] = str(OPSET)
    return out
