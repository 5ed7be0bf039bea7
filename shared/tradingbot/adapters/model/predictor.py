"""Predict the next bar's log return with the exported LSTM on ONNX Runtime (no TensorFlow).

One ``InferenceSession`` per process: :func:`load_default_predictor` is cached, so a Lambda pays
for the session once per cold start and every warm invocation reuses it.

Fails closed. Too few candles, a non-finite feature, candles of another bar interval, or an
artifact whose feature set / window / scaler / graph input does not match this code's features
raise a :class:`~tradingbot.domain.features.FeatureError` (a ``ValueError``) with the reason; the
predictor never pads, truncates or guesses.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tradingbot.adapters.model.artifact import ModelArtifact, latest_bundled, load_artifact
from tradingbot.domain import features as ft
from tradingbot.settings import ModelSection

# Where the predict stage loads its model from: a local folder or s3://bucket/prefix. Unset means
# the model committed in the package (so `make run` predicts out of the box); "none" turns the
# model off (the pipeline then reports ``model: unavailable``).
MODEL_URI_ENV = "MODEL_ARTIFACT_URI"  # Settings.model.artifact_uri
#: distinct candle windows whose forecasts a predictor keeps (Predictor.predict)
RECENT_WINDOWS = 16
_INTERVALS = {"1m": 60, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "4h": 14_400, "1d": 86_400}


@dataclass(frozen=True)
class Prediction:
    model: str  # "name:version", what the pipeline stores and shows
    version: str
    predicted_return: float  # log return of the next bar
    direction: str  # "long" | "short" | "flat"
    as_of: str | None  # timestamp of the last candle used (ISO-8601 UTC), when the candles had one
    candles_used: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "predicted_return": self.predicted_return,
            "direction": self.direction,
            "as_of": self.as_of,
            "candles_used": self.candles_used,
        }


class Predictor:
    def __init__(self, artifact: ModelArtifact, *, threads: int = 1) -> None:
        import onnxruntime as ort  # type: ignore[import-untyped]  # imported here so importing the module stays cheap

        meta = artifact.metadata
        _check_compatible(meta.feature_set, meta.features, meta.window, meta.min_candles)
        self.scaler = ft.Scaler.from_dict(meta.scaler)
        if len(self.scaler.mean) != len(ft.FEATURES):
            raise ft.FeatureMismatchError(
                f"scaler has {len(self.scaler.mean)} features, the model expects {len(ft.FEATURES)}"
            )
        try:
            self.target_scale = float(meta.target["scale"])
        except (KeyError, TypeError, ValueError):
            raise ft.FeatureMismatchError("metadata target.scale is missing or not a number") from None
        opts = ort.SessionOptions()
        # One window is ~100 k multiply-adds: thread hand-offs cost more than they save, and a
        # Lambda's vCPU share is small anyway.
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(artifact.onnx_bytes, opts, providers=["CPUExecutionProvider"])
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or inputs[0].name != meta.input_name:
            raise ft.FeatureMismatchError(
                f"graph inputs {[i.name for i in inputs]} != metadata input {meta.input_name!r}"
            )
        shape = inputs[0].shape
        if len(shape) != 3 or shape[1] != meta.window or shape[2] != len(ft.FEATURES):
            raise ft.FeatureMismatchError(
                f"graph input shape {shape} does not take windows of {meta.window}x{len(ft.FEATURES)}"
            )
        self.artifact = artifact
        self.meta = meta
        self._recent: OrderedDict[bytes, Prediction] = OrderedDict()  # frame digest -> forecast (predict)
        self._recent_lock = threading.Lock()
        self._input = meta.input_name
        self._output = meta.output_name

    @property
    def version(self) -> str:
        return self.meta.version

    def window(self, candles: ft.CandleLike) -> np.ndarray:
        """The scaled (1, window, n_features) float32 input for the last candle."""
        n = len(np.asarray(candles["close"]))
        if n < self.meta.min_candles:
            raise ft.InsufficientCandlesError(
                f"need at least {self.meta.min_candles} candles (EMA 200 warm-up + a {self.meta.window}-bar "
                f"window), got {n}"
            )
        self._check_interval(candles)
        feats = ft.feature_matrix(candles)
        raw = ft.windows(feats, np.array([n - 1]), self.meta.window)
        ft.check_window(raw[0])
        return self.scaler.transform(raw)

    def predict_scaled(self, window: np.ndarray) -> np.ndarray:
        """Raw network output for a batch of already scaled windows (what the benchmark times)."""
        out: np.ndarray = self.session.run([self._output], {self._input: window})[0]
        return out

    def predict(self, candles: ft.CandleLike) -> Prediction:
        """The forecast for the bar after ``candles``' last. A frame whose bars this predictor has
        forecast recently answers from memory (the same bars, the same model: the same forecast), so
        a burst of alerts at one bar close runs the network once per window."""
        if not hasattr(candles, "columns"):  # plain arrays (no pandas in this process): not memoised
            return self._predict(candles)
        from tradingbot.domain.candles import frame_digest  # a frame: pandas is loaded already

        key = frame_digest(candles)  # type: ignore[arg-type]
        with self._recent_lock:
            found = self._recent.get(key)
        if found is None:
            found = self._predict(candles)
            with self._recent_lock:
                self._recent[key] = found
                while len(self._recent) > RECENT_WINDOWS:
                    self._recent.popitem(last=False)
        return found

    def _predict(self, candles: ft.CandleLike) -> Prediction:
        x = self.window(candles)
        value = float(self.predict_scaled(x).reshape(-1)[0]) * self.target_scale
        if not np.isfinite(value):
            raise ft.FeatureError("the model returned a non-finite value; refusing to use it")
        direction = "long" if value > 0 else "short" if value < 0 else "flat"
        return Prediction(
            model=f"{self.meta.name}:{self.meta.version}",
            version=self.meta.version,
            predicted_return=value,
            direction=direction,
            as_of=_last_timestamp(candles),
            candles_used=len(np.asarray(candles["close"])),
        )

    def _check_interval(self, candles: ft.CandleLike) -> None:
        index = getattr(candles, "index", None)
        expected = _INTERVALS.get(self.meta.interval)
        if index is None or expected is None or not hasattr(index, "asi8") or len(index) < 2:
            return  # plain arrays carry no time: the caller vouches for the interval
        step_s = float(np.median(np.diff(index.asi8[-self.meta.window - 1 :]))) / 1e9
        if step_s != expected:
            raise ft.FeatureMismatchError(
                f"candles are {step_s:.0f} s apart, the model was trained on {self.meta.interval} bars"
            )


def _check_compatible(feature_set: str, features: list[str], window: int, min_candles: int) -> None:
    if feature_set != ft.FEATURE_SET or tuple(features) != ft.FEATURES:
        raise ft.FeatureMismatchError(
            f"artifact was trained on feature set {feature_set!r} {list(features)}, this code builds "
            f"{ft.FEATURE_SET!r} {list(ft.FEATURES)}"
        )
    if window != ft.WINDOW:
        raise ft.FeatureMismatchError(f"artifact window is {window} bars, this code builds {ft.WINDOW}")
    if min_candles != ft.WARMUP_BARS + window:
        raise ft.FeatureMismatchError(
            f"artifact needs {min_candles} candles, this code's warm-up needs {ft.WARMUP_BARS + window}"
        )


def _last_timestamp(candles: ft.CandleLike) -> str | None:
    index = getattr(candles, "index", None)
    if index is None or not len(index) or not hasattr(index[-1], "strftime"):
        return None
    return str(index[-1].strftime("%Y-%m-%dT%H:%M:%SZ"))


def load_predictor(uri: str | Path, *, threads: int = 1) -> Predictor:
    return Predictor(load_artifact(uri), threads=threads)


@functools.cache
def load_default_predictor() -> Predictor | None:
    """The process-wide predictor: ``MODEL_ARTIFACT_URI``, else the committed model; None when
    turned off or when no model is bundled. Errors in a configured artifact propagate (fail closed)."""
    section = ModelSection()  # read here, once per process (the cache above), so cache_clear re-reads it
    if section.disabled:
        return None
    uri = section.artifact_uri.strip()
    if not uri:
        bundled = latest_bundled()
        if bundled is None:
            return None
        uri = str(bundled)
    return load_predictor(uri)
