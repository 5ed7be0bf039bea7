"""Train the LSTM on candles: Keras 3 on TensorFlow.

Default architecture is the source document's: LSTM 100 -> 100 -> 50 (dropout 0.2 after each),
Dense 25 relu, Dense 1; every size is configurable. Target: the next bar's log return, divided by
its standard deviation on the training span (the network learns an O(1) number; the scale is kept
in the artifact so inference multiplies it back).

Leakage rules, all enforced here rather than left to callers:
* windows are built by :mod:`tradingbot.domain.features` (causal; property-tested);
* the training span ends strictly before ``train_until``: the last training target is the close of
  bar ``train_until - 1``, known before the first scored window (ending at ``train_until``) is built;
* the scaler and the target scale are fitted on the fit part of the training span only;
* early stopping watches the chronological tail of the training span, never the scored period.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tradingbot.domain import features as ft
from tradingbot_training.tf_setup import tensorflow

# (epoch starting at 1, epochs, logs) -> None; the CLI draws a progress bar from it
ProgressFn = Callable[[int, int, dict[str, float]], None]


@dataclass(frozen=True)
class TrainConfig:
    lstm_units: tuple[int, ...] = (100, 100, 50)
    dropout: float = 0.2
    dense_units: int = 25
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-3
    validation_fraction: float = 0.15
    patience: int = 5  # epochs without a better validation loss before stopping (best weights kept)
    seed: int = 42
    window: int = ft.WINDOW

    def __post_init__(self) -> None:
        if not self.lstm_units or any(u <= 0 for u in self.lstm_units):
            raise ValueError("lstm_units must be positive sizes, at least one layer")
        if not 0 <= self.dropout < 1:
            raise ValueError("dropout must be in [0, 1)")
        if not 0 < self.validation_fraction < 0.5:
            raise ValueError("validation_fraction must be in (0, 0.5)")
        if self.window != ft.WINDOW:
            raise ValueError(f"the feature builder and the predictor use windows of {ft.WINDOW} bars")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lstm_units"] = list(self.lstm_units)
        return d


@dataclass
class TrainedModel:
    model: Any  # keras.Model
    config: TrainConfig
    scaler: ft.Scaler
    target_scale: float
    features: np.ndarray  # raw feature matrix of the whole candle frame (n_bars, n_features)
    targets: np.ndarray  # next-bar log return per bar (NaN for the last)
    index: pd.DatetimeIndex
    fit_ends: np.ndarray  # window-end bars the weights were fitted on
    val_ends: np.ndarray  # window-end bars early stopping watched (held out from the fit)
    history: dict[str, list[float]] = field(default_factory=dict)
    interval: str = "1h"
    # the symbol family the candles are of (TradingView tickers, e.g. ("BTCUSDT",)): the exporter
    # writes it, with ``interval``, into the artifact's metadata, and Predict runs the model on no other
    symbols: tuple[str, ...] = ()

    def scaled_windows(self, ends: np.ndarray) -> np.ndarray:
        return self.scaler.transform(ft.windows(self.features, ends, self.config.window))

    def predict_scaled(self, ends: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Network output (target-scaled) for windows ending at ``ends``; graph call, no dropout."""
        out = [
            self.model(self.scaled_windows(ends[i : i + batch_size]), training=False).numpy().reshape(-1)
            for i in range(0, len(ends), batch_size)
        ]
        return np.concatenate(out) if out else np.empty(0, np.float32)

    def predict_returns(self, ends: np.ndarray) -> np.ndarray:
        return self.predict_scaled(ends).astype(np.float64) * self.target_scale

    def training_span(self) -> dict[str, Any]:
        def ts(i: int) -> str:
            return str(self.index[int(i)].strftime("%Y-%m-%dT%H:%M:%SZ"))

        last_fit = int(self.fit_ends[-1])
        return {
            "first_bar": ts(0),
            "fit_first_window_end": ts(int(self.fit_ends[0])),
            "fit_last_window_end": ts(last_fit),
            "fit_last_target_bar": ts(last_fit + 1),
            "validation_first_window_end": ts(int(self.val_ends[0])),
            "validation_last_window_end": ts(int(self.val_ends[-1])),
            "fit_windows": len(self.fit_ends),
            "validation_windows": len(self.val_ends),
        }


_TICKER = re.compile(r"[A-Z0-9]{2,20}")


def symbol_family(symbols: Sequence[str]) -> tuple[str, ...]:
    """TradingView tickers as the alert carries them (``BTCUSDT``; ``BTCUSDT.P`` -> ``BTCUSDT``),
    upper-cased, de-duplicated, in order; ValueError naming ``symbols`` for anything else."""
    out: list[str] = []
    for raw in symbols:
        ticker = raw.strip().upper().removesuffix(".P")
        if not _TICKER.fullmatch(ticker):
            raise ValueError(f"symbols: {raw!r} is not a ticker like BTCUSDT")
        if ticker not in out:
            out.append(ticker)
    return tuple(out)


def symbols_from_path(path: str | Path) -> tuple[str, ...]:
    """The ticker a candle file's name carries (``ETHUSDT-1h.parquet``, as ``tradingbot data download``
    and the packaged samples name them), or () when the name says nothing."""
    stem = Path(path).name.split("-", 1)[0].upper()
    return (stem,) if _TICKER.fullmatch(stem) and stem.endswith(("USDT", "USD", "USDC")) else ()


def interval_name(index: pd.DatetimeIndex) -> str:
    seconds = int(np.median(np.diff(index.asi8[:1000])) // 1_000_000_000)
    for name, s in (("1m", 60), ("5m", 300), ("15m", 900), ("30m", 1800), ("1h", 3600), ("4h", 14_400), ("1d", 86_400)):
        if seconds == s:
            return name
    return f"{seconds}s"


def build_model(config: TrainConfig, n_features: int = len(ft.FEATURES)) -> Any:
    tensorflow()
    import keras

    inputs = keras.Input((config.window, n_features), name="window")
    x = inputs
    for i, units in enumerate(config.lstm_units):
        last = i == len(config.lstm_units) - 1
        x = keras.layers.LSTM(units, return_sequences=not last, name=f"lstm_{i + 1}")(x)
        if config.dropout:
            x = keras.layers.Dropout(config.dropout, name=f"dropout_{i + 1}")(x)
    if config.dense_units:
        x = keras.layers.Dense(config.dense_units, activation="relu", name="dense")(x)
    outputs = keras.layers.Dense(1, name="next_return_scaled")(x)
    model = keras.Model(inputs, outputs, name="lstm_next_return")
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="mse")
    return model


def train_model(
    candles: pd.DataFrame,
    config: TrainConfig | None = None,
    *,
    train_until: int | None = None,
    progress: ProgressFn | None = None,
    verbose: int = 0,
    symbols: Sequence[str] = (),
) -> TrainedModel:
    """Fit on windows ending before bar ``train_until`` (default: every window with a target).
    ``symbols``: the family the candles are of (required to export the model, see TrainedModel)."""
    cfg = config or TrainConfig()
    family = symbol_family(symbols)
    tensorflow()
    import keras

    n = len(candles)
    feats = ft.feature_matrix(candles)
    targets = ft.next_log_returns(candles)
    stop = n - 1 if train_until is None else min(train_until, n - 1)  # the last bar has no target
    ends = ft.window_ends(n, cfg.window)
    ends = ends[ends < stop]
    n_val = max(1, math.ceil(len(ends) * cfg.validation_fraction))
    if len(ends) - n_val < 8:
        raise ft.InsufficientCandlesError(
            f"only {len(ends)} training windows before bar {stop}; need more candles "
            f"(a window needs {ft.MIN_CANDLES} bars of history)"
        )
    fit_ends, val_ends = ends[:-n_val], ends[-n_val:]

    # Scaler on the feature rows the fit windows contain, nothing later.
    scaler = ft.Scaler.fit(feats[ft.WARMUP_BARS : int(fit_ends[-1]) + 1])
    y_fit = targets[fit_ends]
    target_scale = float(np.std(y_fit)) or 1.0

    def xy(e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return scaler.transform(ft.windows(feats, e, cfg.window)), (targets[e] / target_scale).astype(np.float32)

    x_fit, yf = xy(fit_ends)
    x_val, yv = xy(val_ends)

    keras.utils.set_random_seed(cfg.seed)
    model = build_model(cfg, feats.shape[1])
    callbacks: list[Any] = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience, restore_best_weights=True)
    ]
    if progress is not None:
        callbacks.append(_ProgressCallback(progress, cfg.epochs))
    hist = model.fit(
        x_fit,
        yf,
        validation_data=(x_val, yv),
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        shuffle=True,  # shuffles windows inside the fit span only; the split itself is chronological
        callbacks=callbacks,
        verbose=verbose,
    )
    index = pd.DatetimeIndex(candles.index)
    return TrainedModel(
        model=model,
        config=cfg,
        scaler=scaler,
        target_scale=target_scale,
        features=feats,
        targets=targets,
        index=index,
        fit_ends=fit_ends,
        val_ends=val_ends,
        history={k: [float(v) for v in vals] for k, vals in hist.history.items()},
        interval=interval_name(index),
        symbols=family,
    )


def _progress_base() -> type:
    tensorflow()
    import keras

    return keras.callbacks.Callback  # type: ignore[no-any-return]


class _ProgressCallback(_progress_base()):  # type: ignore[misc]
    def __init__(self, fn: ProgressFn, epochs: int) -> None:
        super().__init__()
        self.fn = fn
        self.epochs = epochs

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self.fn(epoch + 1, self.epochs, {k: float(v) for k, v in (logs or {}).items()})


# ------------------------------------------------------------------ checkpoints (for `model export`)

CHECKPOINT_MODEL = "model.keras"
CHECKPOINT_STATE = "training.json"


def save_checkpoint(trained: TrainedModel, directory: Path, data_path: str) -> Path:
    """Keras weights plus what export needs to rebuild the windows (scaler, spans, data source)."""
    directory.mkdir(parents=True, exist_ok=True)
    trained.model.save(directory / CHECKPOINT_MODEL)
    state = {
        "config": trained.config.to_dict(),
        "scaler": trained.scaler.to_dict(),
        "target_scale": trained.target_scale,
        "fit_ends": [int(trained.fit_ends[0]), int(trained.fit_ends[-1])],
        "val_ends": [int(trained.val_ends[0]), int(trained.val_ends[-1])],
        "history": trained.history,
        "data": data_path,
        "bars": len(trained.index),
        "first_bar": trained.index[0].isoformat(),
        "last_bar": trained.index[-1].isoformat(),
        "feature_set": ft.FEATURE_SET,
        "symbols": list(trained.symbols),
    }
    (directory / CHECKPOINT_STATE).write_text(json.dumps(state, indent=2) + "\n")
    return directory


def load_checkpoint(directory: Path, candles: pd.DataFrame | None = None) -> TrainedModel:
    tensorflow()
    import keras

    from tradingbot.domain.candles import load_candles

    state = json.loads((directory / CHECKPOINT_STATE).read_text())
    if state.get("feature_set") != ft.FEATURE_SET:
        raise ft.FeatureMismatchError(
            f"checkpoint was trained on {state.get('feature_set')!r}, this code builds {ft.FEATURE_SET!r}"
        )
    frame = candles if candles is not None else load_candles(state["data"])
    # `model train --bars N` trains on a slice: cut the same span out of the data file again
    frame = frame.loc[pd.Timestamp(state["first_bar"]) : pd.Timestamp(state["last_bar"])]
    if len(frame) != state["bars"]:
        raise ft.FeatureMismatchError(
            f"checkpoint was trained on {state['bars']} bars from {state['first_bar']} to {state['last_bar']}; "
            f"the data has {len(frame)} bars in that span"
        )
    cfg_raw = dict(state["config"])
    cfg_raw["lstm_units"] = tuple(cfg_raw["lstm_units"])
    index = pd.DatetimeIndex(frame.index)
    return TrainedModel(
        model=keras.models.load_model(directory / CHECKPOINT_MODEL),
        config=TrainConfig(**cfg_raw),
        scaler=ft.Scaler.from_dict(state["scaler"]),
        target_scale=float(state["target_scale"]),
        features=ft.feature_matrix(frame),
        targets=ft.next_log_returns(frame),
        index=index,
        fit_ends=np.arange(state["fit_ends"][0], state["fit_ends"][1] + 1),
        val_ends=np.arange(state["val_ends"][0], state["val_ends"][1] + 1),
        history=state["history"],
        interval=interval_name(index),
        symbols=symbol_family(state.get("symbols", [])),  # a checkpoint from before symbols: ()
    )
