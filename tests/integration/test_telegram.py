"""Telegram commands end to end: the command webhook on the local server (the routes `serve`
mounts), long polling, and a Bot API stand-in on 127.0.0.1 (_telegram_server.py) that answers in
Telegram's wire format, 429 retry_after and getUpdates' offset confirmation included."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from decimal import Decimal

import pytest
import requests
from pydantic import SecretStr
from sqlalchemy import select

from tradingbot.adapters.cache import Cache
from tradingbot.adapters.notify import TelegramBot, TelegramRateLimited, TelegramRefused
from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.adapters.persistence.models import OperatorAudit, Position
from tradingbot.adapters.persistence.repositories import operators as ops
from tradingbot.domain.positions import TradeIntent
from tradingbot.entrypoints.lambdas.webhook import handler as webhook_handler
from tradingbot.entrypoints.local.http import make_server, serve_in_thread
from tradingbot.entrypoints.local.routes import local_routes
from tradingbot.pipeline import notifications
from tradingbot.pipeline.execute import _factory
from tradingbot.pipeline.order_service import execute_intent
from tradingbot.pipeline.runtime import Runtime
from tradingbot.pipeline.telegram_commands import UNKNOWN_CHAT, TelegramPoller, answer, split

from ._telegram_server import BotState, make_update, serve

BTC = "BTC/USDT:USDT"
SECRET = "hook_Secret-123"
CHAT, STRANGER = 4242, 999


class Bot:
    def __init__(self, rt: Runtime, cache: Cache, state: BotState, base: str) -> None:
        self.rt, self.cache, self.state, self.base = rt, cache, state, base
        self.update_id = 0
        with session_scope(rt.engine()) as s:
            self.acc, _ = repo.create_account(s, name="desk", exchange="paper", testnet=True)
            other, _ = repo.create_account(s, name="someone-elses", exchange="paper", testnet=True)
            repo.set_limits(s, "desk", max_leverage=10, max_position_usd=Decimal(100000))
            op = ops.create_operator(s, name="carol")
            ops.assign_account(s, operator_id=op.id, account_id=self.acc.id)
            ops.link_chat(s, operator_id=op.id, chat_id=CHAT)
            dave = ops.create_operator(s, name="dave")
            ops.assign_account(s, operator_id=dave.id, account_id=other.id)
            self.other_id = other.id

    def post(self, text: str, chat: int = CHAT, *, secret: str | None = SECRET, update_id: int | None = None,
             ) -> requests.Response:  # fmt: skip
        if update_id is None:
            self.update_id += 1
            update_id = self.update_id
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
        return requests.post(f"{self.base}/telegram/webhook", json=make_update(update_id, chat, text),
                             headers=headers, timeout=60)  # fmt: skip

    def say(self, text: str) -> str:
        """Send a command; the bot's reply text."""
        before = len(self.state.sent)
        resp = self.post(text)
        assert resp.status_code == 200, resp.text
        replies = self.state.sent[before:]
        assert len(replies) == 1, replies
        assert replies[0]["chat_id"] == CHAT
        return str(replies[0]["text"])

    def open_long(self, qty: str = "0.1") -> None:
        self.cache.put_price("binanceusdm", BTC, Decimal(50000))
        sessions, exchanges = _factory(self.rt)
        intent = TradeIntent(decision_id=f"tg-{dt.datetime.now().timestamp()}", symbol="BTCUSDT", action="long",
                             reference_price=Decimal(50000), quantity=Decimal(qty), leverage=2,
                             stop_loss=Decimal(45000))  # fmt: skip
        assert execute_intent(sessions, self.cache, self.acc.id, intent, exchanges).status == "filled"


@pytest.fixture
def telegram() -> Iterator[BotState]:
    state = BotState(token="123:TEST")
    server = serve(state)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    yield state
    server.shutdown()


@pytest.fixture
def bot(runtime: Runtime, cache: Cache, telegram: BotState) -> Iterator[Bot]:
    runtime.settings = runtime.settings.model_copy(update={
        "telegram_bot_token": SecretStr(telegram.token), "telegram_api_url": telegram.url,  # type: ignore[attr-defined]
        "telegram_webhook_secret": SecretStr(SECRET), "telegram_confirm_ttl_s": 60,
    })  # fmt: skip
    server = make_server("127.0.0.1", 0, local_routes(webhook_handler))
    serve_in_thread(server)
    try:
        yield Bot(runtime, cache, telegram, f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()


def _audit(rt: Runtime) -> list[tuple[str, str, str, str | None]]:
    with session_scope(rt.engine()) as s:
        rows = s.scalars(select(OperatorAudit).order_by(OperatorAudit.id)).all()
        return [(r.actor, r.command, r.outcome, r.reason) for r in rows]


def test_a_missing_or_forged_secret_header_is_refused_audited_and_changes_nothing(bot: Bot) -> None:
    missing = bot.post("/kill", secret=None)
    forged = bot.post("/kill", secret="hook_Secret-124")
    assert (missing.status_code, forged.status_code) == (401, 401)
    assert missing.json()["message"] == "missing X-Telegram-Bot-Api-Secret-Token header"
    assert forged.json()["message"] == "forged X-Telegram-Bot-Api-Secret-Token header"
    assert bot.cache.kill_switch(bot.acc.id) is None and bot.state.sent == []
    assert [a[1:] for a in _audit(bot.rt)] == [
        ("webhook", "refused", "missing X-Telegram-Bot-Api-Secret-Token header"),
        ("webhook", "refused", "forged X-Telegram-Bot-Api-Secret-Token header"),
    ]


def test_no_configured_secret_refuses_everything(bot: Bot) -> None:
    bot.rt.settings = bot.rt.settings.model_copy(update={"telegram_webhook_secret": None})
    resp = bot.post("/kill")
    assert resp.status_code == 503 and bot.cache.kill_switch(bot.acc.id) is None


def test_an_unknown_chat_is_told_so_audited_and_nothing_changes(bot: Bot) -> None:
    resp = bot.post("/kill", chat=STRANGER)
    assert resp.status_code == 200  # Telegram would redeliver anything else
    assert bot.state.sent == [{"chat_id": STRANGER, "text": UNKNOWN_CHAT}]
    assert bot.cache.kill_switch(bot.acc.id) is None and bot.cache.kill_switch(bot.other_id) is None
    assert _audit(bot.rt) == [(f"chat:{STRANGER}", "kill", "refused", "chat not configured")]


def test_kill_and_resume_steer_only_the_chats_operator_accounts(bot: Bot) -> None:
    assert bot.say("/kill") == "desk: kill switch ENGAGED: no new orders"
    assert bot.cache.kill_switch(bot.acc.id) == "telegram (carol via telegram)"
    assert bot.cache.kill_switch(bot.other_id) is None  # dave's account
    refused = bot.say("/kill someone-elses")
    assert refused == "Refused: account: no account 'someone-elses' owned by operator 'carol'"
    assert bot.cache.kill_switch(bot.other_id) is None
    assert bot.say("/resume desk") == "desk: kill switch released: orders allowed"
    assert bot.cache.kill_switch(bot.acc.id) is None


def test_a_redelivered_update_runs_once(bot: Bot) -> None:
    first = bot.post("/kill", update_id=77)
    bot.cache.release_kill_switch(account_id=bot.acc.id)
    again = bot.post("/kill", update_id=77)  # Telegram redelivers an update it thinks was not answered
    assert (first.status_code, again.status_code) == (200, 200)
    assert len(bot.state.sent) == 1 and bot.cache.kill_switch(bot.acc.id) is None
    with session_scope(bot.rt.engine()) as s:
        rows = s.scalars(select(OperatorAudit).where(OperatorAudit.command == "kill")).all()
        # one row for the update (its id recorded once) and one for the switch it changed: once
        assert sorted((r.telegram_update_id is not None, r.outcome) for r in rows) == [(False, "ok"), (True, "ok")]


def test_close_asks_for_confirmation_and_the_code_works_once(bot: Bot) -> None:
    bot.open_long()
    assert bot.say("/close ETHUSDT") == "Refused: symbol: no open position in 'ETHUSDT' on your accounts"
    ask = bot.say("/close btcusdt")
    code = re.search(r"/confirm (\d{6})", ask)
    assert code is not None and "desk: BTCUSDT" in ask
    with session_scope(bot.rt.engine()) as s:  # nothing closed before the confirmation
        assert s.scalars(select(Position).where(Position.closed_at.is_(None))).one().symbol == BTC
    assert bot.say("/confirm 000000" if code.group(1) != "000000" else "/confirm 111111").startswith("Refused: code:")
    assert bot.say(f"/confirm {code.group(1)}") == "desk BTCUSDT: filled"
    with session_scope(bot.rt.engine()) as s:
        assert s.scalars(select(Position).where(Position.closed_at.is_(None))).all() == []
    assert bot.say(f"/confirm {code.group(1)}").startswith("Refused: code:")  # used once


def test_close_still_works_after_kill(bot: Bot) -> None:
    """/kill halts entries; /close (reduce-only) must still flatten the position."""
    bot.open_long()
    assert bot.say("/kill") == "desk: kill switch ENGAGED: no new orders"
    ask = bot.say("/close BTCUSDT")
    code = re.search(r"/confirm (\d{6})", ask)
    assert code is not None
    assert bot.say(f"/confirm {code.group(1)}") == "desk BTCUSDT: filled"
    with session_scope(bot.rt.engine()) as s:
        assert s.scalars(select(Position).where(Position.closed_at.is_(None))).all() == []
    assert bot.cache.kill_switch(bot.acc.id) == "telegram (carol via telegram)"  # still engaged
    sessions, exchanges = _factory(bot.rt)  # and an entry is still refused at the order gate
    entry = TradeIntent(decision_id="tg-entry-while-killed", symbol="BTCUSDT", action="long",
                        reference_price=Decimal(50000), quantity=Decimal("0.1"), leverage=2)  # fmt: skip
    refused = execute_intent(sessions, bot.cache, bot.acc.id, entry, exchanges)
    assert refused.status == "rejected" and "kill switch engaged" in (refused.reason or "")


def test_read_commands_answer_for_a_phone(bot: Bot) -> None:
    bot.open_long()
    bot.cache.put_price("binanceusdm", BTC, Decimal(51000))
    status = bot.say("/status")
    assert "desk: open PnL" in status and "BTCUSDT LONG 0.1 x2" in status
    assert "mark 51,000.00" in status and "stop 45,000.00" in status
    with session_scope(bot.rt.engine()) as s:
        repo.record_decision(s, execution_name="d1", account_id=bot.acc.id, symbol="BTCUSDT",
                             inputs={"alert": {"strategy": "bollinger", "action": "long"}},
                             stages={"validation": {"rules": [{"rule": "max_leverage", "verdict": "fail",
                                                               "reason": "5 > 3"}]}},
                             final_action="rejected", rejection_reason="max_leverage: 5 > 3")  # fmt: skip
    decisions = bot.say("/decisions 3")
    assert "bollinger long BTCUSDT: rejected" in decisions and "rule max_leverage: max_leverage: 5 > 3" in decisions
    assert "/close SYMBOL|all" in bot.say("/help")
    assert "desk (paper)" in bot.say("/balance")
    assert bot.say("/trades 5").splitlines()[0] == "desk: last 1 fills"
    assert bot.say("/profit 7").startswith("Net realized PnL, last 7 days\ndesk: ")
    assert len(bot.say("/daily 3").splitlines()) == 4
    assert "By strategy" in bot.say("/performance")
    assert bot.say("/reconcile").startswith("desk: in sync")
    assert bot.say("/profit lots") == "Refused: days: expected a whole number, got 'lots'"
    assert bot.say("/frobnicate") == "Refused: command: unknown /frobnicate; /help lists them"


def test_a_429_reply_waits_retry_after_then_sends(bot: Bot) -> None:
    waited: list[float] = []
    bot.state.flood_next, bot.state.retry_after = 1, 2
    reply = answer(bot.rt, make_update(500, CHAT, "/help"), sleep=waited.append)
    assert reply.outcome == "ok" and waited == [2.0]
    assert len(bot.state.sent) == 1  # the first attempt was refused, the second delivered


def test_a_429_longer_than_the_budget_answers_503_so_telegram_redelivers(bot: Bot) -> None:
    bot.state.flood_next, bot.state.retry_after = 1, 30
    first = bot.post("/kill", update_id=600)
    assert first.status_code == 503
    # the command ran (its effect stands) but its reply did not go out; the redelivery is recognised
    assert bot.cache.kill_switch(bot.acc.id) is not None
    again = bot.post("/kill", update_id=600)
    assert again.status_code == 200 and bot.state.sent == []


def test_long_polling_confirms_updates_with_the_next_offset(bot: Bot) -> None:
    bot.state.push_text(CHAT, "/kill")
    bot.state.push_text(CHAT, "/help")
    poller = TelegramPoller(bot.rt, timeout_s=0)
    assert poller.poll_once() == 2
    assert bot.cache.kill_switch(bot.acc.id) is not None and len(bot.state.sent) == 2
    assert poller.poll_once() == 0  # asked with offset = last update_id + 1: both were confirmed
    assert bot.state.queue == []
    bot.state.webhook = {"url": "https://example.test/telegram/webhook", "secret_token": SECRET}
    with pytest.raises(TelegramRefused, match="refused getUpdates: Conflict: can't use getUpdates"):
        poller.poll_once()


def test_set_webhook_sends_the_secret_token(telegram: BotState) -> None:
    TelegramBot(api_url=telegram.url, token=telegram.token).set_webhook(  # type: ignore[attr-defined]
        "https://bot.example.test/telegram/webhook", secret_token=SECRET
    )
    assert telegram.webhook == {"url": "https://bot.example.test/telegram/webhook", "secret_token": SECRET}
    with pytest.raises(TelegramRateLimited):
        telegram.flood_next = 1
        TelegramBot(api_url=telegram.url, token=telegram.token).send_message(1, "x")  # type: ignore[attr-defined]


def test_notifications_reach_the_owner_for_stops_hit_and_the_daily_summary(bot: Bot) -> None:
    bot.open_long()
    bot.cache.put_price("binanceusdm", BTC, Decimal(44000))  # through the stop
    from tradingbot.adapters.persistence.config import envelope_cipher
    from tradingbot.entrypoints.cli.exchange import run_reconcile

    run_reconcile(bot.rt.engine(), bot.cache, envelope_cipher(bot.rt.persistence), "desk", True)  # records the fill
    assert notifications.watch_protective_fills(bot.rt) == 1
    assert bot.state.sent[-1]["chat_id"] == CHAT and bot.state.sent[-1]["text"].startswith("STOP hit: desk BTCUSDT")
    assert notifications.watch_protective_fills(bot.rt) == 0  # the watermark moved
    today = dt.datetime.now(dt.UTC).date()
    assert notifications.daily_summary(bot.rt, day=today) == 1
    summary = bot.state.sent[-1]["text"]
    assert summary.startswith(f"Daily summary {today.isoformat()} (UTC)") and "desk: net" in summary


def test_split_keeps_telegrams_limit() -> None:
    text = "\n".join(f"line {i} " + "x" * 50 for i in range(200))
    pieces = split(text)
    assert all(len(p) <= 4096 for p in pieces) and "\n".join(pieces) == text
