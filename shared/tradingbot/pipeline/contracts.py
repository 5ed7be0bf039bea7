"""The pipeline's typed contracts: the execution state and every stage's result.

The webhook starts an execution with :class:`PipelineState` (``alert`` .. ``received_at``); each
Task state's ``ResultPath`` then adds its stage's result under the field of the same name
(``$.predict``, ``$.ballots``, ``$.strategies``, ``$.validation``, ``$.execution``, ``$.notify``,
``$.error``, ``$.record``), so the field names here and the ResultPaths in
``statemachines/trading_pipeline.asl.json`` are one list (a test holds them equal). Every Lambda
handler validates its input with these models and dumps its output through them (``mode="json"``),
so a stage never reads a key another stage did not promise, and ``docs/pipeline-state.schema.json``
(generated from :class:`PipelineState`, see :func:`state_json_schema`) documents the whole shape.

Models forbid unknown keys, except where the producer is another package's report that the decision
record keeps whole (:class:`ExecutionResult`).
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tradingbot.domain.alert import AlertContent
from tradingbot.domain.vote import Abstention, Vote

Seat = Literal["openai", "anthropic", "llama"]
SEATS: tuple[Seat, ...] = ("openai", "anthropic", "llama")
Direction = Literal["long", "short", "flat"]
Signal = Literal["long", "short", "none"]
Outcome = Literal["traded", "rejected", "failed"]


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (Decimals as strings, datetimes ISO-8601): what a handler returns."""
        return self.model_dump(mode="json")


# ------------------------------------------------------------------ the market a decision was made on


class MarketCandles(Contract):
    """Which candles a stage decided on: the feed's Redis key or a REST backfill of a cold key, the
    venue, the ccxt symbol and timeframe, and ``as_of``, the OPEN time of the last closed bar."""

    source: Literal["feed", "backfill"]
    venue: str
    symbol: str
    timeframe: str
    as_of: str
    as_of_is: Literal["open time of the last closed bar"] = "open time of the last closed bar"
    bars: int


# ------------------------------------------------------------------ predict


class ModelUnavailable(Contract):
    """No model deployed (or switched off): the LSTM rule then applies its ``when unavailable`` policy."""

    model: Literal["unavailable"] = "unavailable"
    reason: str


class Prediction(Contract):
    model: str  # "name:version"
    version: str
    predicted_return: float  # log return of the next bar
    direction: Direction
    as_of: str | None
    candles_used: int
    market: MarketCandles | None = None


PredictResult = ModelUnavailable | Prediction


# ------------------------------------------------------------------ one voter seat (a Parallel branch)


class VoteRequest(Contract):
    """The Vote Task's ``Parameters``: one seat, the alert, the prediction, and the correlation id."""

    voter: Seat
    alert: AlertContent
    predict: PredictResult | None = None
    account_id: int
    idempotency_key: str | None = None


class CastVote(Vote):
    """A configured seat's vote."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    configured: Literal[True] = True


class CastAbstention(Abstention):
    """An abstention from a configured seat; also what the ASL's ``Abstain_*`` Pass states write
    when a branch fails (``reason: internal_error``, ``detail``: the error name)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    configured: Literal[True] = True


class Unconfigured(Contract):
    """A seat without credentials: not a vote and not an abstention; it never counts."""

    voter: Seat
    configured: Literal[False] = False
    reason: str


SeatResult = CastVote | CastAbstention | Unconfigured


class EnsembleTally(Contract):
    """The 2-of-3 rule over the configured seats' ballots (computed by the Validate stage)."""

    signal: Literal["LONG", "SHORT"] | None
    outcome: Literal["agreement", "tie", "neutral_majority", "no_quorum", "all_abstained", "no_voters"]
    confidence: float | None
    agreeing: list[str]
    counts: dict[str, int]
    voters_configured: int


# ------------------------------------------------------------------ strategies


class UnknownStrategy(Contract):
    name: str
    known: Literal[False] = False


class BacktestedStrategy(Contract):
    """The alert's strategy backtested on the same candles with the traded configuration (the alert's
    stop and target or the defaults, its leverage, the one fee and slippage default); its win rate
    feeds the validator."""

    name: str
    known: Literal[True] = True
    win_rate: float
    trades: int
    total_return: float
    sharpe: float
    max_drawdown: float
    bars: int
    config: dict[str, float] | None = None  # stop_loss, take_profit (fractions), leverage, fee, slippage_bps
    # issue 18: the parameters backtested (and signalled on): the account's promoted ones, else the defaults
    params: dict[str, float] | None = None
    params_source: str | None = None  # "promotion #12 (run #3)" or "defaults"


class StrategiesResult(Contract):
    signals: dict[str, Signal]
    alert_strategy: BacktestedStrategy | UnknownStrategy
    as_of: str  # open time of the last closed bar (``market.as_of``)
    market: MarketCandles | None = None


# ------------------------------------------------------------------ validate


class RuleVerdict(Contract):
    rule: str
    verdict: Literal["pass", "fail", "skip"]
    reason: str


class TradeIntentOut(Contract):
    """What Execute turns into orders. Prices are decimal strings: never a float on the way to a venue."""

    direction: Direction
    symbol: str
    price: Decimal
    stop_loss: Decimal | None
    take_profit: Decimal | None
    quantity: Decimal | None
    leverage: int


class ValidationResult(Contract):
    action: Literal["trade", "reject"]
    reason: str | None
    rules: list[RuleVerdict]
    ensemble: EnsembleTally
    intent: TradeIntentOut


# ------------------------------------------------------------------ execute, notify, record


class LegResult(BaseModel):
    model_config = ConfigDict(extra="allow")

    leg: str
    client_order_id: str
    side: str
    type: str
    quantity: str
    status: str
    exchange_order_id: str | None = None
    filled: str = "0"
    average_price: str | None = None
    reason: str | None = None


class ExecutionResult(BaseModel):
    """The order service's report (``tradingbot.pipeline.order_service.ExecutionReport``); keys it adds
    later pass through (``extra="allow"``) so the decision record keeps them."""

    model_config = ConfigDict(extra="allow")

    status: Literal["filled", "partially_filled", "rejected", "no_op", "pending"]
    reason: str | None = None
    decision_id: str
    account_id: int
    exchange: str | None = None
    symbol: str
    action: str
    orders: list[LegResult] = Field(default_factory=list)
    position: dict[str, str] | None = None
    warnings: list[str] = Field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class NotifyResult(Contract):
    channel: Literal["log", "telegram"]
    text: str
    message_id: int | None = None


class AlarmsResult(Contract):
    sent: int
    messages: list[NotifyResult]


class StageFailure(BaseModel):
    """What a Catch writes at its ResultPath: Step Functions' ``{"Error", "Cause"}``."""

    model_config = ConfigDict(extra="allow")

    Error: str
    Cause: str | None = None


class RecordResult(Contract):
    decision_id: int
    outcome: Outcome
    reason: str | None


# ------------------------------------------------------------------ the execution state


class PipelineState(Contract):
    """One execution's state. The first five fields (and ``order_nonce``) are the webhook's input;
    the rest are added by the Task states' ResultPaths, in the order the states run."""

    alert: AlertContent
    alert_id: int | None = None
    account_id: int
    idempotency_key: Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_-]+$")]
    received_at: dt.datetime | None = None
    order_nonce: str | None = Field(default=None, description="tradingbot replay --new-order: new client order ids")
    predict: PredictResult | None = None
    ballots: list[SeatResult] | None = None
    strategies: StrategiesResult | None = None
    validation: ValidationResult | None = None
    execution: ExecutionResult | None = None
    notify: NotifyResult | StageFailure | None = None
    error: StageFailure | None = None
    record: RecordResult | None = None

    def dump(self) -> dict[str, Any]:
        """JSON-ready, without the stage keys that are not set yet."""
        return self.model_dump(mode="json", exclude_unset=True)


#: The keys the ASL's ResultPaths write (``$.<key>``), in the order the states run.
RESULT_KEYS = ("predict", "ballots", "strategies", "validation", "execution", "notify", "error", "record")


class RecordRequest(Contract):
    """The Record* Tasks' ``Parameters``: the outcome, the whole state, and ``$$.Execution.Name``."""

    outcome: Outcome
    state: PipelineState
    execution_name: str | None = None


class OptimiseRequest(BaseModel):
    """The optimisation worker's event (Lambda ``backtest``). ``action``:

    * ``run`` (default; an EventBridge schedule's envelope keys are ignored): optimise ``strategy``
      (or every strategy) on ``symbol`` / ``timeframe`` in one invocation; with ``store`` keep the
      run, with ``promote`` also judge it for promotion for every enabled account;
    * ``plan`` / ``fold`` / ``aggregate``: the three steps of statemachines/optimise.asl.json. ``plan``
      writes one item per strategy x symbol x timeframe x fold (``strategies``, ``symbols``,
      ``timeframes``) for the Distributed Map to read from S3; each ``fold`` item runs one fold and
      writes its result; ``aggregate`` stores each complete run and promotes it.

    ``folds`` 0: no walk-forward (a search on every bar: stored, never promoted)."""

    model_config = ConfigDict(extra="ignore")

    action: Literal["run", "plan", "fold", "aggregate"] = "run"
    strategy: str | None = None
    grid: dict[str, list[Any]] | None = None
    top: int = 5
    sort_by: str = "sharpe"
    max_combinations: int = 2000
    # which candles: the downloaded history (Settings.history) of this market, else the packaged sample
    symbol: str = "BTCUSDT"
    timeframe: str = "1h"
    exchange: str = "binanceusdm"
    method: Literal["grid", "genetic"] = "grid"
    objectives: list[str] | None = None  # default: [sort_by]
    folds: int = Field(default=4, ge=0, le=50)
    window: Literal["rolling", "anchored"] = "rolling"
    store: bool = False  # run: store the run in PostgreSQL (aggregate always stores)
    promote: bool = False  # run / plan: also judge it for promotion per enabled account (implies store)
    seed: int = 0
    # plan: the fan-out's axes (the EventBridge schedule passes them)
    strategies: list[str] | None = None
    symbols: list[str] | None = None
    timeframes: list[str] | None = None
    # fold / aggregate: which run (the execution's name) and which fold (== folds: the latest window)
    run_key: str | None = None
    fold: int | None = None


def state_json_schema() -> dict[str, Any]:
    """The JSON Schema of :class:`PipelineState`, as committed in ``docs/pipeline-state.schema.json``."""
    schema = PipelineState.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "pipeline-state.schema.json"
    return schema


def render_state_json_schema() -> str:
    return json.dumps(state_json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":  # python -m tradingbot.pipeline.contracts > docs/pipeline-state.schema.json
    print(render_state_json_schema(), end="")
