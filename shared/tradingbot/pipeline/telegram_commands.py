"""Telegram commands (issue 17), on the same logic module as the operator API
(:mod:`tradingbot.pipeline.operator_api`): a chat is an identity, mapped to one operator
(``tradingbot operators add --telegram-chat``), who steers only the accounts it owns.

Wire format (https://core.telegram.org/bots/api#update, #message, #sendmessage): an ``Update`` has
an ``update_id`` and, for a text message, ``message.chat.id`` and ``message.text``; replies go out
with ``sendMessage`` (text at most 4,096 characters, so longer answers are split). Telegram delivers
an update again until the webhook answers 2xx, so every update is recorded once by its
``update_id`` (``operator_audit``): a redelivered update is answered with nothing and does nothing.
A 429 answer carries ``parameters.retry_after`` (seconds): the reply waits that long, once, when it
fits the budget (:data:`RETRY_BUDGET_S`), else the error propagates (the webhook answers 503 and
Telegram redelivers; the update id keeps the command from running twice).

Messages are plain text laid out for a phone: one fact per line, numbers rounded for reading.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tradingbot.adapters.notify import TelegramBot, TelegramRateLimited
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.adapters.persistence.repositories import operators as ops
from tradingbot.adapters.persistence.repositories.operators import OperatorRef
from tradingbot.errors import TransientError
from tradingbot.pipeline import operator_api as cockpit
from tradingbot.pipeline.runtime import Runtime

log = logging.getLogger(__name__)

MAX_TEXT = 4096  # sendMessage's text limit
RETRY_BUDGET_S = 5.0  # the longest retry_after a reply waits for (a Lambda has a 15 s budget)
UNKNOWN_CHAT = "This chat is not allowed to command this bot. Ask the operator to run: tradingbot operators link-chat"

HELP = """Commands
/status - open positions: entry, mark, PnL, stop, target
/balance - balance and open PnL per account
/profit [days] - net realized PnL (default 30 days)
/daily [days] - PnL per day (default 7)
/trades [n] - last fills (default 10)
/performance - PnL per strategy and symbol
/decisions [n] - last decisions with the rejecting rule (default 5)
/kill [account|all] - stop new orders
/resume [account|all] - allow orders again
/close SYMBOL|all [account] - close (asks to confirm)
/confirm CODE - confirm a /close
/reconcile [account] - compare with the exchange
/help - this list"""


@dataclass
class Reply:
    """What the bot answered to one update (``texts`` empty: nothing, e.g. a redelivery)."""

    chat_id: int | None
    texts: list[str] = field(default_factory=list)
    outcome: str = "ok"
    reason: str | None = None


def _fmt(value: Any, places: int = 2) -> str:
    if value is None:
        return "-"
    number = Decimal(str(value))
    return f"{number:,.{places}f}"


def _price(value: Any) -> str:
    if value is None:
        return "-"
    number = Decimal(str(value))
    return f"{number:,.2f}" if abs(number) >= 1 else f"{number:.6g}"


def _qty(value: Any) -> str:
    """``0.100000000000000000`` -> ``0.1`` (the database keeps 18 places)."""
    return format(Decimal(str(value)).normalize(), "f")


def _int_arg(args: list[str], default: int, lo: int, hi: int, name: str) -> int:
    if not args:
        return default
    try:
        value = int(args[0])
    except ValueError:
        raise cockpit.InvalidRequest(f"{name}: expected a whole number, got {args[0]!r}") from None
    if not lo <= value <= hi:
        raise cockpit.InvalidRequest(f"{name}: must be between {lo} and {hi}, got {value}")
    return value


class Commands:
    """One operator's commands; each returns the reply text."""

    def __init__(self, rt: Runtime, op: OperatorRef, chat_id: int) -> None:
        self.rt, self.op, self.chat_id = rt, op, chat_id

    def _accounts(self, name: str | None = None) -> list[dict[str, Any]]:
        accounts = cockpit.accounts(self.rt, self.op)
        if name is None or name == "all":
            return accounts
        chosen = [a for a in accounts if a["name"] == name]
        if not chosen:
            raise cockpit.NotFound(f"account: no account {name!r} owned by operator {self.op.name!r}")
        return chosen

    def help(self, _: list[str]) -> str:
        return HELP

    def status(self, args: list[str]) -> str:
        lines = []
        for acc in self._accounts(args[0] if args else None):
            pos = cockpit.positions(self.rt, self.op, acc["name"], channel="telegram")
            if not pos["items"]:
                lines.append(f"{acc['name']}: no open position")
                continue
            lines.append(f"{acc['name']}: open PnL {_fmt(pos['unrealized_pnl'])} USDT")
            for p in pos["items"]:
                lines += [f"{p['ticker']} {p['side'].upper()} {_qty(p['quantity'])} x{p['leverage']}",
                          f"  entry {_price(p['entry_price'])}  mark {_price(p['mark_price'])}",
                          f"  PnL {_fmt(p['unrealized_pnl'])} USDT",
                          f"  stop {_price(p['stop_loss'])}  target {_price(p['take_profit'])}"]  # fmt: skip
        return "\n".join(lines) or "no accounts"

    def balance(self, _: list[str]) -> str:
        lines = []
        for acc in self._accounts():
            pos = cockpit.positions(self.rt, self.op, acc["name"], channel="telegram")
            balance = _fmt(acc["balance"]) + " USDT" if acc["balance"] is not None else "kept by the exchange"
            lines += [f"{acc['name']} ({acc['exchange']})", f"  balance {balance}",
                      f"  open PnL {_fmt(pos['unrealized_pnl'])} USDT"]  # fmt: skip
        return "\n".join(lines) or "no accounts"

    def profit(self, args: list[str]) -> str:
        days = _int_arg(args, 30, 1, 3650, "days")
        lines = [f"Net realized PnL, last {days} days"]
        for acc in self._accounts():
            rows = cockpit.pnl_daily(self.rt, self.op, acc["name"], days=days, channel="telegram")["days"]
            net = sum((Decimal(r["net_pnl"]) for r in rows), Decimal(0))
            fees = sum((Decimal(r["fees"]) for r in rows), Decimal(0))
            fills = sum(int(r["fills"]) for r in rows)
            lines.append(f"{acc['name']}: {_fmt(net)} USDT ({fills} fills, fees {_fmt(fees)})")
        return "\n".join(lines)

    def daily(self, args: list[str]) -> str:
        days = _int_arg(args, 7, 1, 90, "days")
        lines = []
        for acc in self._accounts():
            lines.append(f"{acc['name']}, last {days} days (UTC)")
            for r in reversed(cockpit.pnl_daily(self.rt, self.op, acc["name"], days=days, channel="telegram")["days"]):
                lines.append(f"  {r['date']}  {_fmt(r['net_pnl']):>10}  ({r['fills']} fills)")
        return "\n".join(lines) or "no accounts"

    def trades(self, args: list[str]) -> str:
        n = _int_arg(args, 10, 1, 50, "n")
        lines = []
        for acc in self._accounts():
            items = cockpit.fills(self.rt, self.op, acc["name"], limit=n)["items"]
            lines.append(f"{acc['name']}: last {len(items)} fills")
            for f in items:
                when = f["filled_at"][5:16].replace("T", " ")
                lines.append(
                    f"  {when} {f['side']} {_qty(f['quantity'])} {cockpit.ticker(f['symbol'])} @ {_price(f['price'])}"
                )
        return "\n".join(lines) or "no accounts"

    def performance(self, _: list[str]) -> str:
        perf = cockpit.performance(self.rt, self.op, channel="telegram")
        lines = ["By strategy"]
        lines += [f"  {r['name']}: {_fmt(r['net_pnl'])} USDT, {r['wins']}/{r['closing_fills']} winning closes"
                  for r in perf["by_strategy"]] or ["  no fills yet"]  # fmt: skip
        lines.append("By symbol")
        lines += [f"  {r['name']}: {_fmt(r['net_pnl'])} USDT, {r['fills']} fills"
                  for r in perf["by_symbol"]] or ["  no fills yet"]  # fmt: skip
        return "\n".join(lines)

    def decisions(self, args: list[str]) -> str:
        n = _int_arg(args, 5, 1, 20, "n")
        lines = []
        for acc in self._accounts():
            items = cockpit.decisions(self.rt, self.op, acc["name"], limit=n, channel="telegram")["items"]
            lines.append(f"{acc['name']}: last {len(items)} decisions")
            for d in items:
                head = f"#{d['id']} {d['strategy'] or '?'} {d['alert_action'] or '?'} {cockpit.ticker(d['symbol'])}"
                lines.append(f"{head}: {d['outcome']}")
                if d["rejecting_rule"]:
                    lines.append(f"  rule {d['rejecting_rule']}: {d['reason']}")
                elif d["reason"]:
                    lines.append(f"  {d['reason']}")
        return "\n".join(lines) or "no accounts"

    def _switch(self, args: list[str], engage: bool) -> str:
        target = None if not args or args[0] == "all" else args[0]
        result = cockpit.kill_switch(self.rt, self.op, target, engage=engage, reason="telegram", channel="telegram")
        word = "ENGAGED: no new orders" if engage else "released: orders allowed"
        return "\n".join(f"{a['account']}: kill switch {word}" for a in result["accounts"]) or "no accounts"

    def kill(self, args: list[str]) -> str:
        return self._switch(args, True)

    def resume(self, args: list[str]) -> str:
        return self._switch(args, False)

    def close(self, args: list[str]) -> str:
        if not args:
            raise cockpit.InvalidRequest("symbol: /close needs a symbol (e.g. /close BTCUSDT) or all")
        symbol, account = args[0].upper(), (args[1] if len(args) > 1 else None)
        # the symbol is checked before the confirmation is asked for: a typo is refused now
        targets = []
        for acc in self._accounts(account):
            for p in cockpit.positions(self.rt, self.op, acc["name"], channel="telegram")["items"]:
                if symbol == "ALL" or p["ticker"] == cockpit.ticker(symbol):
                    targets.append((acc["name"], p["symbol"]))
        if not targets:
            where = f"account {account!r}" if account else "your accounts"
            raise cockpit.InvalidRequest(f"symbol: no open position in {args[0]!r} on {where}")
        ttl = self.rt.settings.telegram_confirm_ttl_s
        with session_scope(self.rt.engine()) as s:
            code = ops.create_confirmation(s, operator_id=self.op.id, chat_id=self.chat_id,
                                           command={"close": [list(t) for t in targets]},
                                           ttl=dt.timedelta(seconds=ttl))  # fmt: skip
        listing = "\n".join(f"  {name}: {cockpit.ticker(sym)}" for name, sym in targets)
        return f"Close at market:\n{listing}\nSend /confirm {code} within {ttl} s to do it."

    def confirm(self, args: list[str]) -> str:
        if not args:
            raise cockpit.InvalidRequest("code: /confirm needs the code the /close answer gave")
        with session_scope(self.rt.engine()) as s:
            command = ops.take_confirmation(s, chat_id=self.chat_id, code=args[0])
        if command is None:
            raise cockpit.InvalidRequest(f"code: {args[0]!r} is unknown, expired or already used; send /close again")
        lines = []
        for name, symbol in command.get("close", []):
            result = cockpit.close_position(self.rt, self.op, name, symbol, channel="telegram")
            lines.append(f"{name} {cockpit.ticker(symbol)}: {result['status']}"
                         + (f" ({result['reason']})" if result["reason"] else ""))  # fmt: skip
        return "\n".join(lines)

    def reconcile(self, args: list[str]) -> str:
        lines = []
        for report in cockpit.reconcile(self.rt, self.op, args[0] if args else None, channel="telegram"):
            if not report["drifts"]:
                lines.append(f"{report['account']}: in sync ({report['orders_checked']} orders, "
                             f"{report['positions_checked']} positions)")  # fmt: skip
            for d in report["drifts"]:
                lines.append(
                    f"{report['account']}: {d['kind']} {d['key']}: ours {d['stored']}, exchange {d['exchange']}"
                )
        return "\n".join(lines) or "no accounts"


COMMANDS: dict[str, Callable[[Commands, list[str]], str]] = {
    name: getattr(Commands, name)
    for name in ("help", "status", "balance", "profit", "daily", "trades", "performance", "decisions", "kill",
                 "resume", "close", "confirm", "reconcile")
}  # fmt: skip
COMMANDS["start"] = Commands.help


def parse(text: str) -> tuple[str, list[str]]:
    """``/profit@MyBot 7`` -> ("profit", ["7"]) (Telegram appends the bot's name in groups)."""
    head, *args = text.strip().split()
    return head.lstrip("/").split("@", 1)[0].lower(), args


def handle_update(rt: Runtime, update: dict[str, Any]) -> Reply:
    """Run the command in one Update and say what to answer. Audited: one row per update id (a
    redelivery is recognised and does nothing), with who, what, and the outcome."""
    message = update.get("message") or {}
    chat_id = (message.get("chat") or {}).get("id")
    text = message.get("text")
    update_id = update.get("update_id")
    if not isinstance(chat_id, int) or not isinstance(text, str) or not text.startswith("/"):
        return Reply(chat_id if isinstance(chat_id, int) else None, [], "ok", "not a command")
    command, args = parse(text)
    with session_scope(rt.engine()) as s:
        op = ops.operator_by_chat(s, chat_id)
        if op is None:
            fresh = ops.audit(s, channel="telegram", actor=f"chat:{chat_id}", command=command, outcome="refused",
                              args={"text": text[:200]}, reason="chat not configured",
                              telegram_update_id=update_id if isinstance(update_id, int) else None)  # fmt: skip
            return Reply(chat_id, [UNKNOWN_CHAT] if fresh else [], "refused", "chat not configured")
        # claim the update id first: a redelivery finds it and stops here
        fresh = ops.audit(s, channel="telegram", actor=op.actor, operator_id=op.id, command=command,
                          outcome="ok", args={"text": text[:200]},
                          telegram_update_id=update_id if isinstance(update_id, int) else None)  # fmt: skip
    if not fresh:
        return Reply(chat_id, [], "ok", "redelivered update: already handled")
    run = COMMANDS.get(command)
    reply = Reply(chat_id)
    try:
        if run is None:
            raise cockpit.InvalidRequest(f"command: unknown /{command}; /help lists them")
        reply.texts = [run(Commands(rt, op, chat_id), args)]
    except cockpit.OperatorApiError as exc:
        reply.texts, reply.outcome, reply.reason = [f"Refused: {exc}"], "refused", str(exc)
    except TransientError:
        # a dependency blinked: give the update id back so Telegram's redelivery runs the command
        if isinstance(update_id, int):
            with session_scope(rt.engine()) as s:
                ops.release_update_claim(s, telegram_update_id=update_id)
        raise
    except Exception as exc:
        log.exception("telegram command /%s failed", command)
        reply.texts, reply.outcome, reply.reason = (
            [f"Error: /{command} failed ({type(exc).__name__})"],
            "error",
            str(exc),
        )
    if reply.outcome != "ok" and isinstance(update_id, int):
        with session_scope(rt.engine()) as s:
            ops.set_audit_outcome(s, telegram_update_id=update_id, outcome=reply.outcome, reason=reply.reason)
    return reply


def split(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Pieces of at most ``limit`` characters, cut at line ends where possible."""
    pieces, current = [], ""
    for raw in text.splitlines(keepends=True):
        line = raw
        while len(line) > limit:
            pieces.append(line[:limit])
            line = line[limit:]
        if len(current) + len(line) > limit:
            pieces.append(current)
            current = ""
        current += line
    if current:
        pieces.append(current)
    return [p.rstrip("\n") for p in pieces]


def send(bot: TelegramBot, chat_id: int | str, text: str, *, sleep: Callable[[float], None] = time.sleep) -> int:
    """Send ``text`` (split to Telegram's limit); a 429 waits its ``retry_after`` once when that
    fits :data:`RETRY_BUDGET_S`. Returns the number of messages sent."""
    sent = 0
    for piece in split(text):
        try:
            bot.send_message(chat_id, piece)
        except TelegramRateLimited as exc:
            wait = exc.retry_after_s if exc.retry_after_s is not None else 1.0
            if wait > RETRY_BUDGET_S:
                raise
            sleep(wait)
            bot.send_message(chat_id, piece)
        sent += 1
    return sent


def bot_for(rt: Runtime) -> TelegramBot | None:
    token = rt.settings.telegram_token()
    return TelegramBot(api_url=rt.settings.telegram_api_url, token=token) if token else None


def answer(rt: Runtime, update: dict[str, Any], *, sleep: Callable[[float], None] = time.sleep) -> Reply:
    """Handle one update and send its reply (no bot token configured: the reply is only logged)."""
    reply = handle_update(rt, update)
    bot = bot_for(rt)
    for text in reply.texts:
        if bot is None or reply.chat_id is None:
            log.info("telegram reply (no bot token): %s", text)
        else:
            send(bot, reply.chat_id, text, sleep=sleep)
    return reply


class TelegramPoller:
    """``getUpdates`` long polling, for a machine without a public URL (``serve`` with
    TELEGRAM_POLLING=true, or ``tradingbot telegram poll``): each round confirms the previous
    updates by asking from the last ``update_id`` + 1."""

    def __init__(self, rt: Runtime, *, timeout_s: int = 25, sleep: Callable[[float], None] = time.sleep) -> None:
        bot = bot_for(rt)
        if bot is None:
            raise ValueError("TELEGRAM_BOT_TOKEN is not set")
        self.rt, self.bot, self.timeout_s, self.sleep = rt, bot, timeout_s, sleep
        self.offset: int | None = None

    def poll_once(self) -> int:
        updates = self.bot.get_updates(offset=self.offset, timeout_s=self.timeout_s)
        for update in updates:
            update_id = update.get("update_id")
            try:
                answer(self.rt, update, sleep=self.sleep)
            except TransientError:
                log.warning("telegram update %s: a dependency is unavailable; it is asked for again", update_id)
                return 0  # offset not advanced: the same update comes back next round
            if isinstance(update_id, int):
                self.offset = update_id + 1
        return len(updates)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.poll_once()
            except TelegramRateLimited as exc:
                self.sleep(exc.retry_after_s or 1.0)
            except TransientError:
                self.sleep(2.0)
            except Exception:
                log.exception("telegram polling failed; retrying in 5 s")
                self.sleep(5.0)

    def start(self) -> tuple[threading.Thread, threading.Event]:
        stop = threading.Event()
        thread = threading.Thread(target=self.run, args=(stop,), name="telegram-poller", daemon=True)
        thread.start()
        return thread, stop
