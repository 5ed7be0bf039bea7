"""The Predict stage: the LSTM's forecast for the next bar, or an explicit ``model: unavailable``."""

from __future__ import annotations

from tradingbot.domain.alert import AlertContent
from tradingbot.pipeline.common import StageError, stage_candles
from tradingbot.pipeline.contracts import ModelUnavailable, PipelineState, Prediction, PredictResult
from tradingbot.pipeline.runtime import Runtime


def predict_stage(rt: Runtime, state: PipelineState) -> PredictResult:
    return predict_alert(rt, state.alert, state.account_id)


def predict_alert(rt: Runtime, alert: AlertContent, account_id: int | None = None) -> PredictResult:
    """No model package or no artifact is not an error: the LSTM rule applies its policy instead.
    Nor is an alert on a timeframe or symbol family the model was not trained on (its artifact
    metadata's ``interval`` and ``symbols``): the model is then unavailable, with the reason.
    Without an account (the local runner's probe) the paper reference venue's candles are used."""
    try:
        from tradingbot.adapters.model.predictor import load_default_predictor  # type: ignore[import-not-found]
    except ImportError:
        return ModelUnavailable(reason="no model package installed")
    predictor = load_default_predictor()
    if predictor is None:
        return ModelUnavailable(reason="no model artifact configured")
    meta = predictor.meta
    name = f"{meta.name}:{meta.version}"
    timeframe = alert.timeframe()
    if timeframe != meta.interval:
        return ModelUnavailable(reason=f"{name} was trained on {meta.interval} bars, the alert is on {timeframe}")
    family = {s.upper().removesuffix(".P") for s in meta.symbols}
    if alert.symbol not in family:
        trained = ", ".join(sorted(family)) or "no symbol named in its metadata"
        return ModelUnavailable(reason=f"{name} was trained on {trained}, not {alert.symbol}")
    window = stage_candles(rt, alert, account_id)
    try:
        prediction = predictor.predict(window.frame)
    except ValueError as exc:  # too few candles or a feature mismatch: fail closed
        raise StageError(f"predict: {exc}") from None
    return Prediction.model_validate(prediction.to_dict() | {"market": window.describe()})
