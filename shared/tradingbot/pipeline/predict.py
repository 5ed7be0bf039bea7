"""The Predict stage: the LSTM's forecast for the next bar, or an explicit ``model: unavailable``."""

from __future__ import annotations

from tradingbot.domain.alert import AlertContent
from tradingbot.pipeline.common import StageError, stage_candles
from tradingbot.pipeline.contracts import ModelUnavailable, PipelineState, Prediction, PredictResult
from tradingbot.pipeline.runtime import Runtime


def predict_stage(rt: Runtime, state: PipelineState) -> PredictResult:
    return predict_alert(rt, state.alert)


def predict_alert(rt: Runtime, alert: AlertContent) -> PredictResult:
    """No model package or no artifact is not an error: the LSTM rule applies its policy instead."""
    try:
        from tradingbot.adapters.model.predictor import load_default_predictor  # type: ignore[import-not-found]
    except ImportError:
        return ModelUnavailable(reason="no model package installed")
    predictor = load_default_predictor()
    if predictor is None:
        return ModelUnavailable(reason="no model artifact configured")
    candles = stage_candles(rt, alert.symbol)
    try:
        prediction = predictor.predict(candles)
    except ValueError as exc:  # too few candles or a feature mismatch: fail closed
        raise StageError(f"predict: {exc}") from None
    return Prediction.model_validate(prediction.to_dict())
