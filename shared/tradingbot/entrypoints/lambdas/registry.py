"""Every Lambda handler by its functions/ folder name (also the name the local runner dispatches
to). Importing this module imports every handler module; a Lambda imports only its own."""

from __future__ import annotations

from tradingbot.entrypoints.lambdas import (
    backtest,
    execute,
    notify,
    predict,
    reconcile,
    record_outcome,
    strategies,
    sweeper,
    validate,
    vote,
    webhook,
)
from tradingbot.entrypoints.lambdas.edge import Handler

HANDLERS: dict[str, Handler] = {
    "webhook": webhook.handler,
    "predict": predict.handler,
    "vote": vote.handler,
    "strategies": strategies.handler,
    "validate": validate.handler,
    "execute": execute.handler,
    "notify": notify.handler,
    "record_outcome": record_outcome.handler,
    "backtest": backtest.handler,
    "reconcile": reconcile.handler,  # EventBridge every minute (not a state machine task)
    "sweeper": sweeper.handler,  # EventBridge every minute: re-drive (issue 16; `serve` runs the sweep itself)
}
