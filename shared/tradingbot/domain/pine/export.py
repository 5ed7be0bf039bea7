"""Pine Script v5 for the built-in strategies, and the alert message for users' own scripts.

The exported ``strategy()`` declares an ``input.*`` for every parameter of the strategy (defaults,
ranges and steps from its declaration, overridable with ``--param``), computes the same four
signals (``templates.py``), applies them in the backtester's order (exits, then entries; an
opposite entry reverses; a long and a short entry on one bar while flat is ignored, ADR 0002) and
attaches to every order an ``alert_message`` that is exactly our webhook body.

The body is built in Pine from the same template a user would paste (``{{ticker}}``,
``{{interval}}``, ``{{timenow}}``, ``{{close}}``): ``str.replace_all`` fills each placeholder with
the value TradingView would substitute (``syminfo.ticker``, ``timeframe.period``, ``timenow`` as
ISO-8601 UTC, ``close`` at the symbol's tick). The alert dialog's message is then just
``{{strategy.order.alert_message}}`` and the body is right whether or not TradingView substitutes
placeholders inside ``alert_message`` (an integrator, TradersPost, fills them in Pine the same way
for that reason: github.com/TradersPost/pinescript, strategies/Simple Strategy.pine).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal

from tradingbot.domain.costs import TAKER_FEE_RATE
from tradingbot.domain.pine.templates import BODIES
from tradingbot.domain.strategies import get_strategy
from tradingbot.domain.strategies.base import Param, Strategy

PINE_VERSION = 5
"""Pine Script version emitted: v5 is the newest one the PyPI parser ``pynescript`` reads (0.3)."""

TOKEN_PLACEHOLDER = "YOUR_WEBHOOK_TOKEN"
"""Stands for the account's webhook token (printed once by ``tradingbot accounts add``)."""

# What TradingView substitutes for each placeholder, and the Pine expression that yields the same
# value (https://www.tradingview.com/support/solutions/43000531021: {{timenow}} "is formatted the
# same way as {{time}}": yyyy-MM-ddTHH:mm:ssZ in UTC; {{interval}} is the chart's resolution).
PINE_VALUE_OF: dict[str, str] = {
    "{{ticker}}": "syminfo.ticker",
    "{{interval}}": "timeframe.period",
    "{{close}}": "str.tostring(close, format.mintick)",
    "{{timenow}}": "str.format_time(timenow, \"yyyy-MM-dd'T'HH:mm:ss'Z'\", \"UTC\")",
}


def alert_template(*, strategy: str, action: str, token: str = TOKEN_PLACEHOLDER) -> str:
    """The webhook body with TradingView's placeholders, as one JSON line.

    ``action`` is a literal (``long``, ``short``, ``close``) or a placeholder such as
    ``{{strategy.market_position}}``. ``price`` is left unquoted so that it arrives as a JSON
    number once TradingView substitutes ``{{close}}`` (the webhook also accepts it quoted).
    """
    head = json.dumps({"token": token, "strategy": strategy, "symbol": "{{ticker}}", "action": action})[:-1]
    return head + ', "price": {{close}}, "time": "{{timenow}}", "interval": "{{interval}}"}'


def alert_message(*, strategy: str, token: str = TOKEN_PLACEHOLDER) -> str:
    """The message to paste into TradingView's alert dialog for a user's own Pine strategy.

    ``{{strategy.market_position}}`` is the position after the order ("long", "short" or
    "flat"), which is what our ``action`` means; ``{{strategy.order.action}}`` ("buy"/"sell") is
    accepted too but reads a closing sell as "go short".
    """
    get_strategy(strategy)  # unknown names fail with the list of valid ones
    return alert_template(strategy=strategy, action="{{strategy.market_position}}", token=token)


def _pine_number(value: float | int | Decimal, kind: str) -> str:
    if kind == "int":
        return str(int(value))
    text = repr(float(value))
    return text if "." in text or "e" in text else text + ".0"


def _input_line(param: Param, value: int | float) -> str:
    fn = "input.int" if param.kind == "int" else "input.float"
    args = [
        _pine_number(value, param.kind),
        json.dumps(param.name),
        f"minval={_pine_number(param.low, param.kind)}",
        f"maxval={_pine_number(param.high, param.kind)}",
        f"step={_pine_number(param.step, param.kind)}",
    ]
    if param.help:
        args.append(f"tooltip={json.dumps(param.help)}")
    args.append('group="Strategy"')
    return f"p_{param.name} = {fn}({', '.join(args)})"


def _body_function(strategy: Strategy) -> str:
    template = alert_template(strategy=strategy.name, action="{{action}}", token="{{token}}")
    lines = [
        "// The webhook body: TradingView's placeholders filled with the values it would substitute",
        "tbBody(string action, float stopPrice, float targetPrice) =>",
        f"    msg = {_pine_string(template)}",
        '    msg := str.replace_all(msg, "{{token}}", tbToken)',
        '    msg := str.replace_all(msg, "{{action}}", action)',
    ]
    lines += [f'    msg := str.replace_all(msg, "{ph}", {expr})' for ph, expr in PINE_VALUE_OF.items()]
    lines += [
        '    extra = ""',
        "    extra := na(stopPrice) ? extra : extra + ', \"stop_loss\": ' + str.tostring(stopPrice, format.mintick)",
        "    extra := na(targetPrice) ? extra : extra + ', \"take_profit\": ' + "
        "str.tostring(targetPrice, format.mintick)",
        '    str.substring(msg, 0, str.length(msg) - 1) + extra + "}"',
    ]
    return "\n".join(lines)


def _pine_string(text: str) -> str:
    """A single-quoted Pine string literal (the JSON inside keeps its double quotes)."""
    if "'" in text or "\\" in text or "\n" in text:
        raise ValueError(f"cannot embed {text!r} in a Pine string literal")
    return f"'{text}'"


_ORDERS = """\
// Orders in the backtester's order (ADR 0002): exits, then entries; an opposite entry reverses;
// a long and a short entry on one bar while flat is ambiguous and ignored.
inLong = strategy.position_size > 0
inShort = strategy.position_size < 0
ambiguous = longEntry and shortEntry and strategy.position_size == 0
goLong = longEntry and not ambiguous and not inLong
goShort = shortEntry and not ambiguous and not inShort
longStop = stopPct > 0 ? close * (1 - stopPct / 100) : na
longTarget = targetPct > 0 ? close * (1 + targetPct / 100) : na
shortStop = stopPct > 0 ? close * (1 + stopPct / 100) : na
shortTarget = targetPct > 0 ? close * (1 - targetPct / 100) : na
if inLong and longExit and not goShort
    strategy.close("Long", comment="long exit", alert_message=tbBody("close", na, na))
if inShort and shortExit and not goLong
    strategy.close("Short", comment="short exit", alert_message=tbBody("close", na, na))
if goLong
    strategy.entry("Long", strategy.long, alert_message=tbBody("long", longStop, longTarget))
if goShort
    strategy.entry("Short", strategy.short, alert_message=tbBody("short", shortStop, shortTarget))
// Stop-loss and take-profit as fractions of the entry price, as in the backtester; the venue's own
// protective orders (placed from the alert's stop_loss / take_profit) do the same on the exchange.
avgPrice = strategy.position_avg_price
exitBody = tbBody("close", na, na)
longExitStop = stopPct > 0 ? avgPrice * (1 - stopPct / 100) : na
longExitLimit = targetPct > 0 ? avgPrice * (1 + targetPct / 100) : na
shortExitStop = stopPct > 0 ? avgPrice * (1 + stopPct / 100) : na
shortExitLimit = targetPct > 0 ? avgPrice * (1 - targetPct / 100) : na
if inLong and (stopPct > 0 or targetPct > 0)
    strategy.exit("Long SL/TP", "Long", stop=longExitStop, limit=longExitLimit, alert_message=exitBody)
if inShort and (stopPct > 0 or targetPct > 0)
    strategy.exit("Short SL/TP", "Short", stop=shortExitStop, limit=shortExitLimit, alert_message=exitBody)
"""


def export_script(
    *,
    strategy: str,
    params: Mapping[str, str | float | int] | None = None,
    stop_loss_pct: float = 0.0,
    take_profit_pct: float = 0.0,
    version_label: str = "",
) -> str:
    """A Pine Script v5 ``strategy()`` equivalent to the built-in strategy ``strategy``.

    ``params`` override the declared defaults (each checked against its range and the strategy's
    constraint, as ``backtest --param`` does); they become the inputs' default values.
    ``stop_loss_pct`` / ``take_profit_pct`` (percent of the entry price, 0 = off) are the risk
    inputs' defaults; when set, entry alerts carry ``stop_loss`` / ``take_profit`` prices.
    """
    for name, pct in (("stop_loss_pct", stop_loss_pct), ("take_profit_pct", take_profit_pct)):
        if not 0 <= pct < 100:
            raise ValueError(f"{name}: {pct} must be a percentage in [0, 100)")
    strat = get_strategy(strategy)
    if strat.name not in BODIES:  # a strategy registered without a Pine body
        raise ValueError(f"strategy {strat.name!r} has no Pine Script template in domain/pine/templates.py")
    values = strat.resolve(params)
    commission_pct = TAKER_FEE_RATE * 100
    label = f" {version_label}" if version_label else ""
    overrides = " ".join(f"--param {k}={v}" for k, v in (params or {}).items())
    header = [
        f"//@version={PINE_VERSION}",
        f"// TradingBot AI{label}: the built-in strategy {strat.name!r} as a Pine Script strategy.",
        f"// Generated by `tradingbot pine export --strategy {strat.name}{' ' + overrides if overrides else ''}`.",
        f"// {strat.description}",
        "// Alert: Condition = this strategy, 'Order fills only'; Message = {{strategy.order.alert_message}};",
        "// Webhook URL = your TradingBot webhook. Paste the account's token into the 'Webhook token' input.",
        f'strategy("TradingBot {strat.name}", shorttitle="TB {strat.name}", overlay=true, '
        "initial_capital=10000, default_qty_type=strategy.percent_of_equity, default_qty_value=99, "
        f"commission_type=strategy.commission.percent, commission_value={commission_pct.normalize()}, "
        "pyramiding=0, process_orders_on_close=false)",
        "",
        "// Parameters (declared ranges and steps of the built-in strategy)",
    ]
    inputs = [_input_line(p, values[p.name]) for p in strat.params]
    risk = [
        "",
        "// Risk: 0 = off",
        f'stopPct = input.float({_pine_number(stop_loss_pct, "float")}, "Stop-loss %", minval=0.0, step=0.1, '
        'group="Risk")',
        f'targetPct = input.float({_pine_number(take_profit_pct, "float")}, "Take-profit %", minval=0.0, step=0.1, '
        'group="Risk")',
        "",
        "// Webhook",
        f'tbToken = input.string("{TOKEN_PLACEHOLDER}", "Webhook token", group="Webhook", '
        'tooltip="The token `tradingbot accounts add` printed for the account")',
        "",
        _body_function(strat),
        "",
        "// Signals",
    ]
    return "\n".join([*header, *inputs, *risk, BODIES[strat.name].rstrip("\n"), "", _ORDERS.rstrip("\n"), ""])
