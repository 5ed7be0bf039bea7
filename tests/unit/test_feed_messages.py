"""Parsing Binance USDT-M and OKX v5 stream frames into feed events; garbage is refused."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tradingbot.adapters.feed.buffer import EventBuffer
from tradingbot.adapters.feed.messages import (
    BINANCE,
    OKX,
    Candle,
    FeedParseError,
    MarkPrice,
    Price,
    binance_id,
    okx_id,
    parse_binance,
    parse_okx,
)
from tradingbot.adapters.feed.pool import Subscription, Venue, plan
from tradingbot.adapters.feed.store import CandleSeries

SYM = "BTC/USDT:USDT"
BN = {"BTCUSDT": SYM}
OK = {"BTC-USDT-SWAP": SYM}


def combined(stream: str, data: dict[str, Any]) -> str:
    return json.dumps({"stream": stream, "data": data})


def test_binance_agg_trade() -> None:
    frame = combined(
        "btcusdt@aggTrade",
        {"e": "aggTrade", "E": 1700000000123, "s": "BTCUSDT", "a": 5933014, "p": "37000.10", "q": "0.5",
         "f": 100, "l": 105, "T": 1700000000120, "m": True},
    )  # fmt: skip
    assert parse_binance(frame, BN) == [Price(BINANCE, SYM, "37000.10", 1700000000123)]


def test_binance_kline_open_and_closed() -> None:
    k = {"t": 1700000040000, "T": 1700000099999, "s": "BTCUSDT", "i": "1m", "f": 1, "L": 2,
         "o": "100.0", "c": "101.5", "h": "102", "l": "99.5", "v": "12.5", "n": 3, "x": False,
         "q": "1", "V": "1", "Q": "1", "B": "0"}  # fmt: skip
    frame = combined("btcusdt@kline_1m", {"e": "kline", "E": 1700000050000, "s": "BTCUSDT", "k": k})
    [bar] = parse_binance(frame, BN)
    assert bar == Candle(BINANCE, SYM, "1m", 1700000040000, 100.0, 102.0, 99.5, 101.5, 12.5, False, 1700000050000)
    closed = combined("btcusdt@kline_1m", {"e": "kline", "E": 1700000100000, "s": "BTCUSDT", "k": {**k, "x": True}})
    [bar] = parse_binance(closed, BN)
    assert isinstance(bar, Candle) and bar.closed
    assert bar.row() == [1700000040000, 100.0, 102.0, 99.5, 101.5, 12.5]


def test_binance_mark_price_with_funding() -> None:
    frame = combined(
        "btcusdt@markPrice@1s",
        {"e": "markPriceUpdate", "E": 1562305380000, "s": "BTCUSDT", "p": "11794.15", "i": "11784.6",
         "P": "11784.2", "r": "0.00038167", "T": 1562306400000},
    )  # fmt: skip
    assert parse_binance(frame, BN) == [MarkPrice(BINANCE, SYM, "11794.15", "0.00038167", 1562306400000, 1562305380000)]


def test_binance_raw_stream_and_unconfigured_symbol_and_ack() -> None:
    raw = json.dumps({"e": "24hrMiniTicker", "E": 5, "s": "ETHUSDT", "c": "2000.5"})
    assert parse_binance(raw) == [Price(BINANCE, "ETH/USDT:USDT", "2000.5", 5)]
    assert parse_binance('{"result": null, "id": 1}') == []


@pytest.mark.parametrize(
    "frame",
    [
        "not json at all",
        b"\x00\xff\x13",
        "[1, 2, 3]",
        '{"stream": "x", "data": 7}',
        combined("btcusdt@aggTrade", {"e": "aggTrade", "E": 1, "s": "BTCUSDT"}),  # no price
        combined("btcusdt@aggTrade", {"e": "aggTrade", "E": 1, "s": "BTCUSDT", "p": "abc"}),
        combined("btcusdt@aggTrade", {"e": "aggTrade", "E": 1, "s": "BTCUSDT", "p": "-1"}),
        combined("x", {"e": "depthUpdate", "E": 1, "s": "BTCUSDT"}),
        combined("x", {"e": "kline", "E": 1, "s": "BTCUSDT", "k": {"t": 1}}),
        combined("x", {"e": "aggTrade", "E": 1, "s": "???", "p": "1"}),
    ],
)
def test_binance_garbage_raises_parse_error(frame: str | bytes) -> None:
    with pytest.raises(FeedParseError):
        parse_binance(frame, BN)


def test_okx_mark_price_funding_trades_tickers() -> None:
    def frame(channel: str, rows: list[Any]) -> str:
        return json.dumps({"arg": {"channel": channel, "instId": "BTC-USDT-SWAP"}, "data": rows})

    mark = frame("mark-price", [{"instId": "BTC-USDT-SWAP", "markPx": "42310.6", "ts": "1700000000001"}])
    assert parse_okx(mark, OK) == [MarkPrice(OKX, SYM, "42310.6", None, None, 1700000000001)]
    funding = frame(
        "funding-rate",
        [{"instId": "BTC-USDT-SWAP", "fundingRate": "0.0001", "fundingTime": "1700006400000", "ts": "1700000000002"}],
    )
    assert parse_okx(funding, OK) == [MarkPrice(OKX, SYM, None, "0.0001", 1700006400000, 1700000000002)]
    trades = frame(
        "trades",
        [{"instId": "BTC-USDT-SWAP", "px": "1.5", "sz": "2", "side": "buy", "ts": "7"},
         {"instId": "BTC-USDT-SWAP", "px": "1.6", "sz": "1", "side": "sell", "ts": "8"}],
    )  # fmt: skip
    assert parse_okx(trades, OK) == [Price(OKX, SYM, "1.5", 7), Price(OKX, SYM, "1.6", 8)]
    tickers = frame("tickers", [{"instId": "BTC-USDT-SWAP", "last": "9.25", "ts": "9"}])
    assert parse_okx(tickers, OK) == [Price(OKX, SYM, "9.25", 9)]


def test_okx_candles_confirm_flag_and_hour_bar() -> None:
    rows = [["1700000040000", "100", "102", "99.5", "101.5", "12.5", "0.1", "100", "0"]]
    doc = {"arg": {"channel": "candle1m", "instId": "BTC-USDT-SWAP"}, "data": rows}
    [bar] = parse_okx(json.dumps(doc), OK)
    assert bar == Candle(OKX, SYM, "1m", 1700000040000, 100.0, 102.0, 99.5, 101.5, 12.5, False, 0)
    doc = {"arg": {"channel": "candle1H", "instId": "BTC-USDT-SWAP"}, "data": [[*rows[0][:8], "1"]]}
    [bar] = parse_okx(json.dumps(doc), OK)
    assert isinstance(bar, Candle) and bar.timeframe == "1h" and bar.closed


def test_okx_control_frames_and_garbage() -> None:
    assert parse_okx("pong") == []
    assert parse_okx('{"event": "subscribe", "arg": {"channel": "trades", "instId": "BTC-USDT-SWAP"}}') == []
    for bad in (
        '{"event": "error", "code": "60012", "msg": "Invalid request"}',
        "{{{",
        '{"arg": {"channel": "books", "instId": "BTC-USDT-SWAP"}, "data": [{}]}',
        '{"arg": {"channel": "trades", "instId": "BTC-USDT-SWAP"}, "data": [{"px": "1"}]}',
        '{"arg": {"channel": "candle7m", "instId": "BTC-USDT-SWAP"}, "data": [["1","1","1","1","1","1","1","1","1"]]}',
        '{"arg": {"channel": "candle1m", "instId": "BTC-USDT-SWAP"}, "data": [["1","1"]]}',
    ):
        with pytest.raises(FeedParseError):
            parse_okx(bad, OK)


def test_symbol_ids() -> None:
    assert binance_id(SYM) == "BTCUSDT"
    assert okx_id(SYM) == "BTC-USDT-SWAP"


def test_pool_respects_streams_per_connection() -> None:
    subs = [Subscription(f"C{i}/USDT:USDT", ("1m", "1h")) for i in range(100)]  # 4 streams each
    plans = plan(Venue(BINANCE, "ws://h", "http://h", streams_per_connection=50), subs)
    assert [len(p.streams) for p in plans] == [50] * 8
    assert all(p.url.startswith("ws://h/stream?streams=") and p.url.count("@") >= 50 for p in plans)
    assert sorted(s for p in plans for s in p.streams) == sorted({s for p in plans for s in p.streams})
    # the documented hard limit wins over a larger setting
    big = plan(Venue(BINANCE, "ws://h", "http://h", streams_per_connection=5000), subs * 3)
    assert max(len(p.streams) for p in big) <= 1024
    okx = plan(Venue(OKX, "ws://h/ws/v5", "http://h"), subs)
    assert {p.url for p in okx} == {"ws://h/ws/v5/public", "ws://h/ws/v5/business"}
    assert all(len(p.streams) <= 100 and len(p.subscribe_frames) == 1 for p in okx)
    business = [p for p in okx if p.url.endswith("business")]
    assert all(s.startswith("candle") for p in business for s in p.streams)


def test_candle_series_no_duplicates_bounded_and_closed_wins() -> None:
    s = CandleSeries(keep=3)

    def bar(t: int, close: float, closed: bool) -> Candle:
        return Candle(BINANCE, SYM, "1m", t, 1, 2, 0.5, close, 1, closed, 0)

    s.upsert(bar(60, 1.0, False))
    s.upsert(bar(60, 1.1, True))
    assert not s.upsert(bar(60, 9.9, False))  # late partial of a closed bar is ignored
    s.upsert(bar(180, 1.3, False))
    s.upsert(bar(120, 1.2, True))  # backfilled out of order
    s.upsert(bar(240, 1.4, False))
    assert s.opens == [120, 180, 240] and [r[4] for r in s.rows] == [1.2, 1.3, 1.4]


def test_buffer_coalesces_prices_and_keeps_closed_candles() -> None:
    asyncio.run(_coalesce())


async def _coalesce() -> None:
    buf = EventBuffer(max_closed=10)
    for i in range(1000):
        await buf.put(Price(BINANCE, SYM, str(100 + i), i + 1))
    await buf.put(Candle(BINANCE, SYM, "1m", 0, 1, 1, 1, 1, 1, True, 5))
    assert len(buf) == 2 and buf.coalesced == 999
    events, oldest = await buf.take()
    assert events[0] == Candle(BINANCE, SYM, "1m", 0, 1, 1, 1, 1, 1, True, 5)
    assert events[1] == Price(BINANCE, SYM, "1099", 1000)
    assert oldest == [5, 1]  # the price slot reports its oldest coalesced event time for the lag metric


def test_candle_series_json_matches_plain_encoding() -> None:
    s = CandleSeries(keep=4)
    assert json.loads(s.to_json()) == []
    for t, closed in ((60, False), (60, True), (120, False), (180, True), (120, True), (240, False), (300, False)):
        s.upsert(Candle(BINANCE, SYM, "1m", t, 1, 2, 0.5, t / 10, 1, closed, 0))
        assert json.loads(s.to_json()) == s.rows
