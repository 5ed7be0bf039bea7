"""``tradingbot pine check FILE``: what a user's Pine Script sends to our webhook, and what to fix.

The script is parsed with ``pynescript`` (a Pine Script v5 grammar). The report gives the version,
whether it is a ``strategy`` or an ``indicator``, its inputs, and every alert it can raise
(``alert()``, ``alertcondition()``, and the ``alert_message`` of ``strategy.entry`` / ``exit`` /
``close`` / ``order``). Each message is evaluated statically where it can be (string literals,
concatenation, ``input.*`` defaults, ``str.replace_all`` / ``str.tostring`` / ``str.format_time``
and the script's own functions over them), TradingView's placeholders are replaced with sample
values as TradingView would, and the result goes through the webhook's own body model, so a
message that passes here is accepted by the webhook (apart from the token's value and the time's
freshness, which depend on the moment it is sent).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pynescript.ast as past
from pydantic import ValidationError

from tradingbot.domain.alert import TradingViewAlert
from tradingbot.domain.pine.export import TOKEN_PLACEHOLDER
from tradingbot.domain.strategies import REGISTRY
from tradingbot.errors import PermanentError


class PineError(PermanentError, ValueError):
    """A script that cannot be read: not Pine Script, or a syntax error (with its line)."""


_VERSION = re.compile(r"^\s*//\s*@version\s*=\s*(\d+)", re.MULTILINE)
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")
SAMPLE_TIME = "2026-01-02T03:04:05Z"

# Sample values for TradingView's placeholders
# (https://www.tradingview.com/support/solutions/43000531021 and 43000481368 "Strategy Alerts").
PLACEHOLDER_SAMPLES: dict[str, str] = {
    "ticker": "BTCUSDT.P",
    "exchange": "BINANCE",
    "interval": "60",
    "open": "64000.1",
    "high": "64100.2",
    "low": "63900.3",
    "close": "64000.5",
    "volume": "1234.5",
    "time": SAMPLE_TIME,
    "timenow": SAMPLE_TIME,
    "syminfo.currency": "USDT",
    "syminfo.basecurrency": "BTC",
    "strategy.order.action": "buy",
    "strategy.order.contracts": "0.01",
    "strategy.order.price": "64000.5",
    "strategy.order.id": "Long",
    "strategy.order.comment": "Long",
    "strategy.market_position": "long",
    "strategy.market_position_size": "0.01",
    "strategy.prev_market_position": "flat",
    "strategy.prev_market_position_size": "0",
    "strategy.position_size": "0.01",
}
_PLOT = re.compile(r"plot_\d+|plot\(\"[^\"]*\"\)")

# Pine built-ins evaluated to the value TradingView would put in the message
_BUILTIN_VALUES: dict[str, Any] = {
    "close": 64000.5,
    "open": 64000.1,
    "high": 64100.2,
    "low": 63900.3,
    "volume": 1234.5,
    "syminfo.ticker": "BTCUSDT.P",
    "syminfo.tickerid": "BINANCE:BTCUSDT.P",
    "syminfo.prefix": "BINANCE",
    "syminfo.currency": "USDT",
    "syminfo.basecurrency": "BTC",
    "timeframe.period": "60",
    "format.mintick": "mintick",
}


@dataclass(frozen=True)
class PineInput:
    name: str
    kind: str
    default: Any
    title: str | None


@dataclass(frozen=True)
class AlertSite:
    """One place that raises an alert, and what its message does at our webhook."""

    line: int
    kind: str  # "alert()", "alertcondition()", "strategy.entry alert_message", ...
    message: str | None  # the message with placeholders, when it could be evaluated
    body: dict[str, Any] | None  # the body after TradingView's substitution, when it is JSON
    problems: tuple[str, ...]
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class PineReport:
    version: int | None
    kind: str  # "strategy", "indicator" or "library"
    title: str | None
    inputs: tuple[PineInput, ...]
    alerts: tuple[AlertSite, ...]
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.alerts) and all(a.ok for a in self.alerts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "kind": self.kind,
            "title": self.title,
            "inputs": [i.__dict__ for i in self.inputs],
            "alerts": [{**a.__dict__, "ok": a.ok} for a in self.alerts],
            "problems": list(self.problems),
            "ok": self.ok,
        }


class _UnknownError(PermanentError):
    """A value only known when the script runs (a series other than the sampled built-ins)."""


_NA = object()


def _dotted(node: Any) -> str | None:
    if isinstance(node, past.Name):
        return str(node.id)
    if isinstance(node, past.Attribute):
        head = _dotted(node.value)
        return None if head is None else f"{head}.{node.attr}"
    return None


def _args(call: Any) -> tuple[list[Any], dict[str, Any]]:
    positional, named = [], {}
    for arg in call.args:
        if getattr(arg, "name", None):
            named[arg.name] = arg.value
        else:
            positional.append(arg.value)
    return positional, named


def _arg(call: Any, index: int, name: str) -> Any | None:
    positional, named = _args(call)
    if name in named:
        return named[name]
    return positional[index] if index < len(positional) else None


def _tostring(value: Any) -> str:
    if value is _NA:
        return "NaN"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(Decimal(repr(value)).normalize(), "f")
    return str(value)


class _Evaluator:
    """Evaluates the string expressions that build alert messages, with sample built-in values."""

    def __init__(self, script: Any) -> None:
        self.globals: dict[str, Any] = {}
        self.functions: dict[str, Any] = {}
        for stmt in script.body:
            if isinstance(stmt, past.FunctionDef):
                self.functions[stmt.name] = stmt
            elif isinstance(stmt, (past.Assign, past.ReAssign)) and isinstance(stmt.target, past.Name):
                self.globals[stmt.target.id] = stmt.value

    def eval(self, node: Any, scope: dict[str, Any] | None = None, depth: int = 0) -> Any:
        if depth > 50:
            raise _UnknownError("expression too deep")
        scope = scope or {}

        def ev(n: Any) -> Any:
            return self.eval(n, scope, depth + 1)

        if isinstance(node, past.Constant):
            return node.value
        if isinstance(node, (past.Name, past.Attribute)):
            name = _dotted(node)
            if name is None:
                raise _UnknownError("an attribute of an expression")
            if name in scope:
                return scope[name]
            if name == "na":
                return _NA
            if name in _BUILTIN_VALUES:
                return _BUILTIN_VALUES[name]
            if name == "timenow":
                return dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
            if name in self.globals:
                return ev(self.globals[name])
            raise _UnknownError(f"`{name}`")
        if isinstance(node, past.UnaryOp):
            value = ev(node.operand)
            if isinstance(node.op, past.USub) and isinstance(value, (int, float)):
                return -value
            if isinstance(node.op, past.Not) and isinstance(value, bool):
                return not value
            raise _UnknownError("a unary operation")
        if isinstance(node, past.BinOp):
            left, right = ev(node.left), ev(node.right)
            if left is _NA or right is _NA:
                return _NA
            if isinstance(node.op, past.Add) and isinstance(left, str) and isinstance(right, str):
                return left + right
            if isinstance(left, (int, float)) and isinstance(right, (int, float)):
                ops: dict[type, Callable[[], Any]] = {past.Add: lambda: left + right, past.Sub: lambda: left - right,
                       past.Mult: lambda: left * right, past.Div: lambda: left / right}  # fmt: skip
                for op_type, fn in ops.items():
                    if isinstance(node.op, op_type):
                        return fn()
            raise _UnknownError("an arithmetic expression")
        if isinstance(node, past.Compare) and len(node.ops) == 1:
            left, right = ev(node.left), ev(node.comparators[0])
            if isinstance(left, (int, float)) and isinstance(right, (int, float)):
                cmp: dict[type, bool] = {past.Gt: left > right, past.GtE: left >= right, past.Lt: left < right,
                       past.LtE: left <= right, past.Eq: left == right, past.NotEq: left != right}  # fmt: skip
                for op_type, result in cmp.items():
                    if isinstance(node.ops[0], op_type):
                        return result
            raise _UnknownError("a comparison known only at run time")
        if isinstance(node, past.BoolOp):
            values = [ev(v) for v in node.values]
            if all(isinstance(v, bool) for v in values):
                return all(values) if isinstance(node.op, past.And) else any(values)
            raise _UnknownError("a condition known only at run time")
        if isinstance(node, past.Conditional):
            test = ev(node.test)
            if isinstance(test, bool):
                return ev(node.body if test else node.orelse)
            raise _UnknownError("a condition known only at run time")
        if isinstance(node, past.Call):
            return self._call(node, scope, depth)
        raise _UnknownError(type(node).__name__)

    def _call(self, node: Any, scope: dict[str, Any], depth: int) -> Any:
        name = _dotted(node.func)
        positional, named = _args(node)

        def ev(n: Any) -> Any:
            return self.eval(n, scope, depth + 1)

        if name is not None and name.startswith("input"):
            default = _arg(node, 0, "defval")
            if default is None:
                raise _UnknownError(f"{name}() without a default")
            return ev(default)
        if name == "na":
            return ev(positional[0]) is _NA
        if name == "str.tostring":
            return _tostring(ev(positional[0]))
        if name == "str.format_time":
            when = ev(positional[0])
            if isinstance(when, dt.datetime):
                return when.strftime("%Y-%m-%dT%H:%M:%SZ")
            raise _UnknownError("str.format_time of a value other than timenow")
        if name == "str.replace_all":
            source, target, replacement = (ev(a) for a in positional[:3])
            if all(isinstance(v, str) for v in (source, target, replacement)):
                return source.replace(target, replacement)
            raise _UnknownError("str.replace_all over non-strings")
        if name == "str.length":
            value = ev(positional[0])
            return len(value) if isinstance(value, str) else _unknown("str.length")
        if name == "str.substring":
            text, start = ev(positional[0]), ev(positional[1])
            end = ev(positional[2]) if len(positional) > 2 else None
            if isinstance(text, str) and isinstance(start, int):
                return text[start:end] if isinstance(end, int) or end is None else _unknown("str.substring")
            raise _UnknownError("str.substring")
        if name in self.functions:
            fn = self.functions[name]
            local = dict(scope)
            for param, arg in zip(fn.args, positional, strict=False):
                local[param.name] = ev(arg)
            for key, arg in named.items():
                local[key] = ev(arg)
            result: Any = None
            for stmt in fn.body:
                if isinstance(stmt, (past.Assign, past.ReAssign)) and isinstance(stmt.target, past.Name):
                    local[stmt.target.id] = self.eval(stmt.value, local, depth + 1)
                elif isinstance(stmt, past.Expr):
                    result = self.eval(stmt.value, local, depth + 1)
                else:
                    raise _UnknownError(f"statement {type(stmt).__name__} in {name}()")
            return result
        raise _UnknownError(f"`{name or 'a call'}()`")


def _unknown(what: str) -> Any:
    raise _UnknownError(what)


_ORDER_FUNCTIONS = {"strategy.entry", "strategy.exit", "strategy.close", "strategy.close_all", "strategy.order"}


def _alert_calls(script: Any) -> Iterator[tuple[str, Any, Any]]:
    """(kind, call, message expression or None) for every call that can raise an alert."""
    for node in past.walk(script):
        if not isinstance(node, past.Call):
            continue
        name = _dotted(node.func)
        if name == "alert":
            yield "alert()", node, _arg(node, 0, "message")
        elif name == "alertcondition":
            yield "alertcondition()", node, _arg(node, 2, "message")
        elif name in _ORDER_FUNCTIONS:
            _, named = _args(node)
            if "alert_message" in named:
                yield f"{name} alert_message", node, named["alert_message"]


def substitute(message: str) -> tuple[str, list[str]]:
    """``message`` with TradingView's placeholders replaced by sample values; unknown ones listed."""
    unknown: list[str] = []

    def repl(match: re.Match[str]) -> str:
        key = match.group(1)
        if key in PLACEHOLDER_SAMPLES:
            return PLACEHOLDER_SAMPLES[key]
        if _PLOT.fullmatch(key):
            return "1.5"
        unknown.append(match.group(0))
        return match.group(0)

    return _PLACEHOLDER.sub(repl, message), unknown


def check_message(message: str) -> tuple[dict[str, Any] | None, list[str], list[str]]:
    """(body, problems, notes) for one alert message with placeholders, as our webhook sees it."""
    problems: list[str] = []
    notes: list[str] = []
    if "{{strategy.order.alert_message}}" in message:
        return None, [], ["forwards the order's alert_message: each order's own message is checked instead"]
    text, unknown = substitute(message)
    problems += [f"{p} is not a TradingView placeholder: it would arrive literally" for p in unknown]
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        problems.append(
            f"the message is not JSON once TradingView fills its placeholders ({exc.msg} at column {exc.colno}); "
            "our webhook needs a JSON object: run `tradingbot pine alert-message --strategy NAME`"
        )
        return None, problems, notes
    if not isinstance(data, dict):
        return None, [*problems, "the message must be a JSON object"], notes
    if "{{time}}" in message:
        problems.append(
            "{{time}} is the bar's open time: on an hourly chart the alert arrives up to an hour after it, and the "
            "webhook refuses alerts older than ALERT_MAX_AGE_S (300 s); use {{timenow}}"
        )
    strategy = data.get("strategy")
    if isinstance(strategy, str) and strategy not in REGISTRY and "{{" not in strategy:
        notes.append(f"strategy {strategy!r} is not a built-in one: Strategies and the win-rate rule will refuse it")
    candidate = dict(data)
    if candidate.get("token") == TOKEN_PLACEHOLDER:
        notes.append(f'token: replace "{TOKEN_PLACEHOLDER}" with the account\'s webhook token')
        candidate["token"] = "x" * 32
    try:
        TradingViewAlert.model_validate(candidate)
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "body"
            problems.append(f"{where}: {err['msg']}")
    return data, problems, notes


def check_script(text: str) -> PineReport:
    """Parse a Pine Script and report what each of its alerts sends to our webhook.

    Raises :class:`PineError` when the text is not a readable Pine Script (with the line).
    """
    if not text.strip():
        raise PineError("the file is empty; expected a Pine Script (//@version=5 ...)")
    try:
        script = past.parse(text)
    except past.SyntaxError as exc:
        details = exc.args[1] if len(exc.args) > 1 else None
        where = f"line {details.lineno}: " if details is not None and getattr(details, "lineno", None) else ""
        raise PineError(f"{where}syntax error: {exc.args[0] if exc.args else 'unreadable'}") from None
    except Exception as exc:  # the generated ANTLR parser raises assorted errors on garbage
        raise PineError(f"not a Pine Script this checker can read: {type(exc).__name__}: {exc}") from None
    problems: list[str] = []
    match = _VERSION.search(text)
    version = int(match.group(1)) if match else None
    if version is None:
        problems.append("no //@version=N line: TradingView compiles it as version 1; add //@version=5")
    elif version < 5:
        problems.append(f"version {version}: this checker reads v5 (v6 scripts of the same syntax parse too)")
    kind, title = _declaration(script)
    if kind is None:
        problems.append("no strategy() or indicator() declaration")
    evaluator = _Evaluator(script)
    inputs = tuple(_inputs(script, evaluator))
    alerts: list[AlertSite] = []
    for site_kind, call, expr in _alert_calls(script):
        line = int(getattr(call, "lineno", 0) or 0)
        if expr is None:
            alerts.append(AlertSite(line, site_kind, None, None, ("the call has no message",)))
            continue
        try:
            message = evaluator.eval(expr)
        except _UnknownError as exc:
            problem = (
                f"the message depends on {exc} at run time: cannot be checked here; "
                "build it from literals, inputs and str.replace_all"
            )
            alerts.append(AlertSite(line, site_kind, None, None, (problem,)))
            continue
        if not isinstance(message, str):
            alerts.append(AlertSite(line, site_kind, None, None, ("the message is not a string",)))
            continue
        body, site_problems, notes = check_message(message)
        alerts.append(AlertSite(line, site_kind, message, body, tuple(site_problems), tuple(notes)))
    if not alerts:
        problems.append(
            "no alert() call, alertcondition() or alert_message: create the alert in TradingView with the message "
            "from `tradingbot pine alert-message --strategy NAME`"
        )
    return PineReport(version, kind or "unknown", title, inputs, tuple(alerts), tuple(problems))


def _declaration(script: Any) -> tuple[str | None, str | None]:
    for stmt in script.body:
        value = stmt.value if isinstance(stmt, past.Expr) else None
        if isinstance(value, past.Call):
            name = _dotted(value.func)
            if name in {"strategy", "indicator", "study", "library"}:
                title = _arg(value, 0, "title")
                kind = "indicator" if name == "study" else name
                return kind, title.value if isinstance(title, past.Constant) else None
    return None, None


def _inputs(script: Any, evaluator: _Evaluator) -> Iterator[PineInput]:
    for stmt in script.body:
        if not (isinstance(stmt, past.Assign) and isinstance(stmt.target, past.Name)):
            continue
        call = stmt.value
        name = _dotted(call.func) if isinstance(call, past.Call) else None
        if name is None or not (name == "input" or name.startswith("input.")):
            continue
        title = _arg(call, 1, "title")
        try:
            default = evaluator.eval(call)
        except _UnknownError:
            default = None
        yield PineInput(
            stmt.target.id,
            name.removeprefix("input.") if "." in name else "input",
            default,
            title.value if isinstance(title, past.Constant) else None,
        )


def render_report(report: PineReport, *, path: str = "") -> Sequence[str]:
    """The report as lines for a terminal."""
    out = [
        f"{path or 'script'}: Pine Script v{report.version or '?'} {report.kind}"
        + (f" {report.title!r}" if report.title else "")
    ]
    if report.inputs:
        out.append("inputs: " + ", ".join(f"{i.name} ({i.kind}, default {i.default!r})" for i in report.inputs))
    for site in report.alerts:
        status = "OK " if site.ok else "FIX"
        out.append(f"[{status}] line {site.line}: {site.kind}")
        if site.message is not None:
            out.append(f"      message: {site.message}")
        out += [f"      - {p}" for p in site.problems]
        out += [f"      note: {n}" for n in site.notes]
    out += [f"[FIX] {p}" for p in report.problems]
    out.append(
        "result: every alert yields a body the webhook accepts" if report.ok else "result: fix the lines marked FIX"
    )
    return out
