"""Telegram notifications to the operator who owns the account (issue 17): fills and errors from the
Notify stage, stops and targets hit (:func:`watch_protective_fills`, every minute), and a daily
summary (:func:`daily_summary`). A chat gets an account's messages when it is linked to the
account's owner (``tradingbot operators link-chat``); ``TELEGRAM_CHAT_ID`` keeps receiving the
Notify stage's one line as before.

Sending goes through :func:`tradingbot.pipeline.telegram_commands.send` (Telegram's 429
``retry_after`` honoured); without a bot token the text goes to the log.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from typing import Any

from tradingbot.adapters.persistence.db import session_scope
from tradingbot.adapters.persistence.repositories import operators as ops
from tradingbot.pipeline import operator_api as cockpit
from tradingbot.pipeline.contracts import PipelineState
from tradingbot.pipeline.runtime import Runtime
from tradingbot.pipeline.telegram_commands import bot_for, send

log = logging.getLogger(__name__)
_KIND = {"stop_market": "STOP hit", "take_profit_market": "TARGET hit"}


def deliver(rt: Runtime, chats: list[int], text: str) -> int:
    """Send ``text`` to each chat; returns how many chats got it (failures are logged, not raised:
    a notification never fails the trade it reports)."""
    bot = bot_for(rt)
    if bot is None:
        log.info("notify (no bot token): %s", text)
        return 0
    done = 0
    for chat in chats:
        try:
            send(bot, chat, text)
            done += 1
        except Exception as exc:
            log.warning("notification to chat %s failed: %s", chat, type(exc).__name__)
    return done


def execution_text(state: PipelineState) -> str:
    """One decision's outcome for a phone: the intent, each filled leg with its price, or the error."""
    alert = state.alert
    head = f"{alert.strategy}: {alert.action} {alert.symbol} @ {alert.price}"
    if state.error is not None:
        return f"{head}\nERROR {state.error.Error}: {str(state.error.Cause)[:300]}"
    ex = state.execution
    if ex is None:
        reason = state.validation.reason if state.validation is not None else None
        return f"{head}\nno order: {reason or 'rejected'}"
    lines = [f"{head}\n{ex.status.replace('_', ' ')}" + (f": {ex.reason}" if ex.reason else "")]
    for leg in ex.orders:
        if leg.average_price is not None and Decimal(leg.filled or "0") > 0:
            lines.append(f"  {leg.leg} {leg.side} {leg.filled} @ {leg.average_price}")
        elif leg.status not in ("filled",):
            lines.append(f"  {leg.leg} {leg.type} {leg.status}" + (f" ({leg.reason})" if leg.reason else ""))
    return "\n".join(lines)


def to_owner(rt: Runtime, account_id: int, text: str) -> int:
    with session_scope(rt.engine()) as s:
        chats = ops.chats_for_account(s, account_id)
    return deliver(rt, chats, text) if chats else 0


def watch_protective_fills(rt: Runtime, *, limit: int = 100) -> int:
    """Tell the owners about stop and target orders that filled since the last run (a watermark on
    the fill id, kept in the audit as the ``notify_fills`` row); returns messages sent."""
    with session_scope(rt.engine()) as s:
        after = ops.last_notified_fill(s)
        rows = ops.protective_fills_after(s, after, limit=limit)
        if not rows:
            return 0
        per_account: dict[int, list[str]] = {}
        for row in rows:
            per_account.setdefault(row["account_id"], []).append(
                f"{_KIND.get(row['type'], row['type'])}: {row['account']} {cockpit.ticker(row['symbol'])} "
                f"{row['side']} {row['quantity']} @ {row['price']}"
            )
        chats = {a: ops.chats_for_account(s, a) for a in per_account}
        ops.audit(s, channel="cli", actor="notifier", command="notify_fills", outcome="ok",
                  args={"last_fill_id": max(r["fill_id"] for r in rows), "fills": len(rows)})  # fmt: skip
    return sum(deliver(rt, chats[a], "\n".join(lines)) for a, lines in per_account.items() if chats[a])


def daily_summary(rt: Runtime, *, day: dt.date | None = None) -> int:
    """Yesterday's (UTC) summary per operator with a chat: net PnL, fills, decisions traded and
    rejected, open positions with their PnL. Returns messages sent."""
    day = day or (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).date()
    sent = 0
    with session_scope(rt.engine()) as s:
        operators = [(o["id"], o["name"], o["telegram_chats"]) for o in ops.list_operators(s) if o["telegram_chats"]]
    for op_id, name, chats in operators:
        op = ops.OperatorRef(op_id, name, "notifier")
        lines = [f"Daily summary {day.isoformat()} (UTC)"]
        for acc in cockpit.accounts(rt, op):
            days = (dt.datetime.now(dt.UTC).date() - day).days + 1
            pnl = next((d for d in cockpit.pnl_daily(rt, op, acc["name"], days=days)["days"]
                        if d["date"] == day.isoformat()), None)  # fmt: skip
            counts = _decision_counts(rt, op, acc["name"], day)
            pos = cockpit.positions(rt, op, acc["name"])
            lines += [f"{acc['name']}: net {pnl['net_pnl'] if pnl else '0'} USDT, {pnl['fills'] if pnl else 0} fills",
                      f"  decisions: {counts['traded']} traded, {counts['rejected']} rejected, "
                      f"{counts['failed']} failed",
                      f"  open: {len(pos['items'])} position(s), PnL {pos['unrealized_pnl']} USDT"]  # fmt: skip
        sent += deliver(rt, list(chats), "\n".join(lines))
    return sent


def _decision_counts(rt: Runtime, op: ops.OperatorRef, account: str, day: dt.date) -> dict[str, int]:
    counts = {"traded": 0, "rejected": 0, "failed": 0}
    with session_scope(rt.engine()) as s:
        acc = ops.owned_account(s, op.id, account)
        if acc is None:
            return counts
        for final_action, n in ops.decision_counts(s, acc.id, day):
            key = {"rejected": "rejected", "error": "failed"}.get(str(final_action), "traded")
            counts[key] += n
    return counts


def stage_summary(state: PipelineState) -> dict[str, Any]:
    """What the Notify stage tells the owner (kept beside the one-line message)."""
    return {"account_id": state.account_id, "text": execution_text(state)}
