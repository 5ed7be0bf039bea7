"""The predictor on the committed model, with onnxruntime only (no TensorFlow): it predicts, and it
fails closed on too few candles, bad candles, a feature/metadata mismatch and a sha256 mismatch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tradingbot.adapters.model import predictor as pred_mod
from tradingbot.adapters.model.artifact import (
    ArtifactError,
    ArtifactIntegrityError,
    latest_bundled,
    list_local,
    load_artifact,
    sha256_hex,
)
from tradingbot.adapters.model.predictor import Predictor, load_default_predictor, load_predictor
from tradingbot.domain import features as ft
from tradingbot.domain.candles import resample

BUNDLED = latest_bundled()
pytestmark = pytest.mark.skipif(BUNDLED is None, reason="no committed model under tradingbot/model/artifacts")


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    assert BUNDLED is not None
    return load_predictor(BUNDLED)


@pytest.fixture
def artifact_copy(tmp_path: Path) -> Path:
    assert BUNDLED is not None
    dst = tmp_path / BUNDLED.name
    shutil.copytree(BUNDLED, dst)
    return dst


def _edit_metadata(directory: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = directory / "metadata.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.fixture
def default_predictor_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    load_default_predictor.cache_clear()
    yield monkeypatch
    load_default_predictor.cache_clear()


def test_committed_artifact_is_small_and_verified() -> None:
    assert BUNDLED is not None
    art = load_artifact(BUNDLED)
    assert (BUNDLED / "model.onnx").stat().st_size < 2 * 1024 * 1024
    assert art.metadata.sha256 == sha256_hex((BUNDLED / "model.onnx").read_bytes())
    assert art.metadata.features == list(ft.FEATURES) and art.metadata.window == ft.WINDOW
    assert art.metadata.metrics["parity_max_abs_diff"] < 1e-4
    assert [m.version for m in list_local()][-1] == art.version


def test_predicts_next_return_direction_and_version(predictor: Predictor, btc_1h: pd.DataFrame) -> None:
    result = predictor.predict(btc_1h.iloc[-500:])
    assert np.isfinite(result.predicted_return) and abs(result.predicted_return) < 0.05  # hourly log return
    assert result.direction == ("long" if result.predicted_return > 0 else "short")
    assert result.version == predictor.version and result.model.endswith(":" + predictor.version)
    assert result.as_of == btc_1h.index[-1].strftime("%Y-%m-%dT%H:%M:%SZ")
    d = result.to_dict()
    assert {"model", "version", "predicted_return", "direction"} <= d.keys()
    json.dumps(d)  # the pipeline stores it as JSON


def test_prediction_is_the_graph_on_the_scaled_window(predictor: Predictor, btc_1h: pd.DataFrame) -> None:
    candles = btc_1h.iloc[-300:]
    feats = ft.feature_matrix(candles)
    x = predictor.scaler.transform(ft.windows(feats, np.array([len(candles) - 1])))
    expected = float(predictor.predict_scaled(x)[0, 0]) * predictor.target_scale
    assert predictor.predict(candles).predicted_return == pytest.approx(expected, rel=1e-6)


def test_the_same_bars_are_forecast_once_and_a_changed_bar_again(
    predictor: Predictor, btc_1h: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a burst at bar close: many executions on the same window run the network once between them
    runs: list[int] = []
    real = predictor.predict_scaled
    monkeypatch.setattr(predictor, "predict_scaled", lambda x: runs.append(1) or real(x))
    window = btc_1h.iloc[-400:]
    first = predictor.predict(window)
    again = predictor.predict(window.copy())  # another frame, the same bars
    assert again == first and len(runs) == 1
    moved = window.copy()
    moved.iloc[-1, moved.columns.get_loc("close")] *= 1.01  # the last bar differs: a new forecast
    changed = predictor.predict(moved)
    assert len(runs) == 2 and changed.predicted_return != first.predicted_return


def test_fails_closed_on_too_few_candles(predictor: Predictor, btc_1h: pd.DataFrame) -> None:
    predictor.predict(btc_1h.iloc[-ft.MIN_CANDLES :])  # exactly enough works
    with pytest.raises(
        ft.InsufficientCandlesError, match=rf"need at least {ft.MIN_CANDLES} candles.*got {ft.MIN_CANDLES - 1}"
    ):
        predictor.predict(btc_1h.iloc[-(ft.MIN_CANDLES - 1) :])


def test_fails_closed_on_nan_candle_and_wrong_interval(predictor: Predictor, btc_1h: pd.DataFrame) -> None:
    broken = btc_1h.iloc[-400:].copy()
    broken.iloc[-5, broken.columns.get_loc("volume")] = np.nan
    with pytest.raises(ft.FeatureError, match="volume_rel is not finite"):
        predictor.predict(broken)
    four_hour = resample(btc_1h, "4h")
    with pytest.raises(ft.FeatureMismatchError, match="trained on 1h bars"):
        predictor.predict(four_hour.iloc[-400:])


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda m: m.__setitem__("features", m["features"][:-1]), "feature set"),
        (lambda m: m.__setitem__("feature_set", "ohlcv-something-else/v0"), "feature set"),
        (lambda m: m.__setitem__("window", 30), "window is 30"),
        (lambda m: m["scaler"].__setitem__("std", m["scaler"]["std"][:-1]), "scaler"),
        (lambda m: m.__setitem__("input_name", "x"), "graph inputs"),
        (lambda m: m.pop("target"), "lacks target"),
    ],
)
def test_fails_closed_on_feature_or_metadata_mismatch(
    artifact_copy: Path, change: Callable[[dict[str, Any]], None], match: str
) -> None:
    _edit_metadata(artifact_copy, change)
    with pytest.raises(ValueError, match=match):
        load_predictor(artifact_copy)


def test_fails_closed_on_sha256_mismatch(artifact_copy: Path) -> None:
    model = artifact_copy / "model.onnx"
    model.write_bytes(model.read_bytes() + b"\0")
    with pytest.raises(ArtifactIntegrityError, match="does not match metadata"):
        load_predictor(artifact_copy)


def test_fails_closed_on_missing_or_unsigned_artifact(artifact_copy: Path, tmp_path: Path) -> None:
    _edit_metadata(artifact_copy, lambda m: m.__setitem__("sha256", ""))
    with pytest.raises(ArtifactIntegrityError):
        load_predictor(artifact_copy)
    with pytest.raises(ArtifactError, match="not found"):
        load_predictor(tmp_path / "nowhere")


def test_default_predictor_is_one_session_per_process(default_predictor_env: pytest.MonkeyPatch) -> None:
    default_predictor_env.delenv(pred_mod.MODEL_URI_ENV, raising=False)
    first = load_default_predictor()
    assert first is not None and first is load_default_predictor()
    assert first.version == load_artifact(BUNDLED or "").version
    load_default_predictor.cache_clear()
    default_predictor_env.setenv(pred_mod.MODEL_URI_ENV, "none")
    assert load_default_predictor() is None


def test_default_predictor_from_a_configured_uri_fails_closed(
    default_predictor_env: pytest.MonkeyPatch, artifact_copy: Path
) -> None:
    (artifact_copy / "model.onnx").write_bytes(b"not a model")
    default_predictor_env.setenv(pred_mod.MODEL_URI_ENV, str(artifact_copy))
    with pytest.raises(ArtifactIntegrityError):
        load_default_predictor()


def test_loads_from_s3_and_verifies(artifact_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    for k, v in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    with moto.mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="models")
        for name in ("model.onnx", "metadata.json"):
            s3.put_object(Bucket="models", Key=f"lstm/v1/{name}", Body=(artifact_copy / name).read_bytes())
        art = load_artifact("s3://models/lstm/v1")
        assert art.metadata.sha256 == sha256_hex(art.onnx_bytes)
        s3.put_object(Bucket="models", Key="lstm/v1/model.onnx", Body=b"tampered")
        with pytest.raises(ArtifactIntegrityError):
            load_artifact("s3://models/lstm/v1")
        with pytest.raises(ArtifactError, match="cannot read"):
            load_artifact("s3://models/missing")


def test_inference_imports_no_tensorflow() -> None:
    code = (
        "import sys; from tradingbot.adapters.model.predictor import load_default_predictor; "
        "from tradingbot.domain.candles import load_candles, bundled_path; "
        "p = load_default_predictor(); p.predict(load_candles(bundled_path()).iloc[-300:]); "
        "bad = [m for m in ('tensorflow', 'keras', 'tf2onnx', 'pandas_ta', 'numba', 'boto3') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "", f"inference imported {out.stdout.strip()}"
