"""The whole model path with real TensorFlow, kept tiny (a slice of bars, 1-2 epochs, a few units):
train -> export (tf2onnx) -> parity check -> artifact -> predictor (ONNX Runtime) -> pipeline shape;
the export refuses a graph that disagrees; walk-forward evaluation writes an honest report."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

# training/ is its own top-level package (TensorFlow lives only there); from a source checkout it
# sits beside shared/, installed it is importable as is.
_TRAINING = Path(__file__).resolve().parents[2] / "training"
if str(_TRAINING) not in sys.path:
    sys.path.insert(0, str(_TRAINING))

from tradingbot.adapters.model.artifact import list_local  # noqa: E402
from tradingbot.adapters.model.predictor import load_predictor  # noqa: E402
from tradingbot.domain import features as ft  # noqa: E402
from tradingbot.entrypoints.cli.model import model_app  # noqa: E402
from tradingbot_training.evaluate import EvalConfig, mcnemar, render_markdown, walk_forward, wilson  # noqa: E402
from tradingbot_training.export import ParityError, export_trained  # noqa: E402
from tradingbot_training.train import TrainConfig, TrainedModel, load_checkpoint, save_checkpoint, train_model  # noqa: E402

TINY = TrainConfig(lstm_units=(8, 4), dense_units=4, epochs=2, batch_size=32, patience=2, seed=7)


@pytest.fixture(scope="module")
def slice_1h(btc_1h: pd.DataFrame) -> pd.DataFrame:
    return btc_1h.iloc[-700:]


@pytest.fixture(scope="module")
def trained(slice_1h: pd.DataFrame) -> TrainedModel:
    epochs: list[int] = []
    model = train_model(slice_1h, TINY, progress=lambda e, n, logs: epochs.append(e), symbols=["btcusdt.P"])
    assert epochs == [1, 2]
    return model


def test_training_respects_the_chronological_split(trained: TrainedModel, slice_1h: pd.DataFrame) -> None:
    assert trained.fit_ends[0] == ft.MIN_CANDLES - 1
    assert trained.fit_ends[-1] < trained.val_ends[0]  # validation strictly after the fit span
    assert trained.val_ends[-1] == len(slice_1h) - 2  # the last bar has no target, so no window
    fit_rows = trained.features[ft.WARMUP_BARS : trained.fit_ends[-1] + 1]
    assert trained.scaler.mean == pytest.approx(tuple(fit_rows.mean(axis=0)))  # scaler: fit span only
    assert trained.target_scale == pytest.approx(np.std(trained.targets[trained.fit_ends]))


def test_train_export_parity_predict(trained: TrainedModel, slice_1h: pd.DataFrame, tmp_path: Path) -> None:
    result = export_trained(trained, tmp_path, version="vtest")
    assert result.max_abs_diff < 1e-4 and result.parity_windows == len(trained.val_ends)
    meta = result.metadata
    assert meta.version == "vtest" and meta.features == list(ft.FEATURES) and meta.interval == "1h"
    # what it was trained on, as Predict checks it (TradingView's BTCUSDT.P is the same family)
    assert meta.symbols == ["BTCUSDT"]
    assert json.loads((result.directory / "metadata.json").read_text())["symbols"] == ["BTCUSDT"]
    assert meta.training_span["fit_windows"] == len(trained.fit_ends)

    predictor = load_predictor(result.directory)
    got = predictor.predict(slice_1h)
    keras_out = float(
        np.asarray(trained.model(trained.scaled_windows(np.array([len(slice_1h) - 1])), training=False))[0, 0]
    )
    assert got.predicted_return == pytest.approx(keras_out * trained.target_scale, abs=1e-4 * trained.target_scale)
    assert got.direction in {"long", "short"} and got.model == "lstm-btcusdt-1h:vtest"


def test_export_refuses_a_graph_that_disagrees(trained: TrainedModel, slice_1h: pd.DataFrame, tmp_path: Path) -> None:
    other = train_model(slice_1h, TrainConfig(**{**TINY.to_dict(), "lstm_units": (8, 4), "epochs": 1, "seed": 99}))
    from tradingbot_training.export import to_onnx

    foreign = to_onnx(other.model, ft.WINDOW, len(ft.FEATURES))
    with pytest.raises(ParityError, match="artifact not written"):
        export_trained(trained, tmp_path, version="vbad", onnx_bytes=foreign)
    assert not (tmp_path / "vbad").exists() and not list(tmp_path.iterdir())


def test_export_refuses_a_model_whose_symbol_family_is_unknown(slice_1h: pd.DataFrame, tmp_path: Path) -> None:
    from tradingbot.adapters.model.artifact import ArtifactError

    anonymous = train_model(slice_1h, TrainConfig(**{**TINY.to_dict(), "epochs": 1}))
    with pytest.raises(ArtifactError, match=r"^symbols: the symbol family the model was trained on is not known"):
        export_trained(anonymous, tmp_path, version="vnone")
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="symbols: 'BTC/USDT' is not a ticker"):
        train_model(slice_1h, TINY, symbols=["BTC/USDT"])


def test_predict_runs_the_model_only_on_its_family_and_interval(
    trained: TrainedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datetime as dt
    from typing import cast

    from tradingbot.adapters.model.predictor import load_default_predictor
    from tradingbot.domain.alert import AlertContent
    from tradingbot.pipeline.contracts import ModelUnavailable
    from tradingbot.pipeline.predict import predict_alert
    from tradingbot.pipeline.runtime import Runtime

    result = export_trained(trained, tmp_path, version="vfam")
    monkeypatch.setenv("MODEL_ARTIFACT_URI", str(result.directory))
    load_default_predictor.cache_clear()
    try:
        now = dt.datetime.now(dt.UTC)

        def alert(symbol: str, interval: str | None = None) -> AlertContent:
            return AlertContent(strategy="bollinger", symbol=symbol, action="long", price=1, time=now,
                                interval=interval)  # fmt: skip

        # both answers come from the artifact's metadata, before any candle is read (no runtime needed)
        rt = cast(Runtime, None)
        eth = predict_alert(rt, alert("ETHUSDT"))
        assert eth == ModelUnavailable(reason="lstm-btcusdt-1h:vfam was trained on BTCUSDT, not ETHUSDT")
        four_hours = predict_alert(rt, alert("BTCUSDT.P", "240"))
        assert four_hours == ModelUnavailable(reason="lstm-btcusdt-1h:vfam was trained on 1h bars, the alert is on 4h")
    finally:
        load_default_predictor.cache_clear()


def test_checkpoint_round_trip_exports_the_same_model(
    trained: TrainedModel, slice_1h: pd.DataFrame, tmp_path: Path
) -> None:
    ckpt = save_checkpoint(trained, tmp_path / "ckpt", "unused.csv")
    again = load_checkpoint(ckpt, candles=slice_1h)
    ends = trained.val_ends[-5:]
    np.testing.assert_allclose(again.predict_scaled(ends), trained.predict_scaled(ends), atol=1e-6)
    assert again.scaler == trained.scaler and again.target_scale == trained.target_scale
    assert again.symbols == ("BTCUSDT",) and again.interval == "1h"


def test_walk_forward_report_is_honest(btc_1h: pd.DataFrame, tmp_path: Path) -> None:
    cfg = EvalConfig(folds=2, initial_train_fraction=0.6, train=TrainConfig(**{**TINY.to_dict(), "epochs": 1}))
    folds: list[dict[str, Any]] = []
    report = walk_forward(btc_1h.iloc[-800:], cfg, on_fold=lambda i, n, f: folds.append(f))
    assert len(folds) == 2 and report["protocol"]["folds"] == 2
    # each fold is scored strictly after what its model was trained on, and the blocks tile the test span
    assert folds[0]["test_last_window_end"] < folds[1]["test_first_window_end"]
    assert sum(f["test_windows"] for f in folds) == report["protocol"]["windows_scored"]
    d = report["model"]["direction"]
    assert 0 <= d["ci95"][0] <= d["accuracy"] <= d["ci95"][1] <= 1
    assert set(report["baselines"]) == {"zero_return", "last_return", "always_long"}
    assert set(report["backtest"]) >= {"model_direction", "buy_and_hold"}
    assert report["backtest"]["model_direction"]["fees_paid"] > 0
    assert report["claim_check"]["claimed_accuracy"] == 0.685
    text = render_markdown(report)
    assert "beat the naive baselines" in text and "68.50 %" in text
    json.dumps(report)  # the JSON report


def test_statistics() -> None:
    lo, hi = wilson(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)
    right = np.array([True] * 30 + [False] * 10)
    assert mcnemar(right, right)["p_value"] == 1.0
    assert mcnemar(right, ~right)["p_value"] < 0.01


def test_cli_train_list_predict(slice_1h: pd.DataFrame, tmp_path: Path) -> None:
    data = tmp_path / "candles.csv"
    slice_1h.reset_index().to_csv(data, index=False)
    runner = CliRunner()
    args = ["train", "--data", str(data), "--epochs", "1", "--lstm-units", "4", "--dense", "0", "--version", "vcli"]
    args += ["--out", str(tmp_path / "models"), "--checkpoint-dir", str(tmp_path / "ck")]
    # "candles.csv" does not say whose candles they are: the command asks before training
    res = runner.invoke(model_app, args)
    assert res.exit_code == 2 and "--symbols: name the symbol family the candles in" in res.output, res.output
    assert not (tmp_path / "models").exists()
    res = runner.invoke(model_app, [*args, "--symbols", "BTCUSDT"])
    assert res.exit_code == 0, res.output
    assert "exported lstm-btcusdt-1h:vcli" in res.output and "max abs diff" in res.output
    assert [(m.version, m.symbols, m.interval) for m in list_local(tmp_path / "models")] == [
        ("vcli", ["BTCUSDT"], "1h")
    ]
    res = runner.invoke(model_app, ["export", "--checkpoint", str(tmp_path / "ck" / "vcli"), "--version", "vcli2",
                                    "--out", str(tmp_path / "models")])  # fmt: skip
    assert res.exit_code == 0, res.output
    res = runner.invoke(model_app, ["predict", "--data", str(data), "--uri", str(tmp_path / "models" / "vcli2")])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["version"] == "vcli2"
    res = runner.invoke(
        model_app, ["predict", "--data", str(data), "--bars", "100", "--uri", str(tmp_path / "models" / "vcli")]
    )
    assert res.exit_code == 2 and "need at least 259 candles" in res.output
