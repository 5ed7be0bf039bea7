"""Candle history for research: downloaded with ccxt ``fetch_ohlcv`` (public, paginated, resumable)
into one Parquet file per exchange, symbol and timeframe, and read back by the backtest, optimise
and the optimisation worker.

Where: ``{root}/{exchange}/{SYMBOL}-{timeframe}.parquet``; ``root`` is a folder (``.data/history``
locally) or ``s3://bucket/prefix`` (the project bucket on AWS), from ``Settings.history``.

The venue's rules this follows:

* Binance USD-M ``GET /fapi/v1/klines``: ``startTime`` / ``endTime`` / ``limit`` (default 500,
  max 1500); "klines are uniquely identified by their open time"; the last row is the bar still
  forming (https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Kline-Candlestick-Data).
  ccxt's ``binance.fetch_ohlcv`` caps ``limit`` at 1000 itself ("max 1500 for futures ... the
  reality is that the time range wider than 500 candles won't work right"), so a page is 1000 bars.
* OKX ``GET /api/v5/market/candles`` (the latest 1,440 bars) and ``/market/history-candles``
  (older): ``limit`` "The maximum is 300. The default is 100." on both; ``after`` / ``before`` return
  records earlier / newer than a ts, newest first, counted from the newest end
  (https://www.okx.com/docs-v5/en/#order-book-trading-market-data-get-candlesticks and
  ...-get-candlesticks-history). ccxt's ``okx.fetch_ohlcv`` picks the endpoint by ``since``, clamps
  ``limit`` to 300 and sets ``after = since + limit x bar``, but an ``until`` param replaces that
  ``after``: so each OKX page passes ``until`` = the end of that page's own window (300 bars), never
  the end of the whole range (which would answer the range's newest 300 bars instead of the next
  ones), and an empty window (an outage, or before the listing) moves on to the next one.

Only closed bars are stored (``open + interval <= now``): the forming bar would change. A second
run continues from the bar after the last stored one. Every write replaces the whole file with a
validated frame (local: a temporary file renamed into place; S3: one PUT), so the file is always
either the previous complete history or the new one; a long download checkpoints every
``checkpoint_bars`` bars, so an interrupted run keeps what it fetched and the next run resumes.

Bad answers stop the download with an error naming the bar and field (a missing or non-numeric
value, a bar out of order); a hole in the venue's series (an exchange outage) stops it too unless
``allow_gaps`` (then the gaps are reported). Nothing of the bad page is written.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from tradingbot.adapters.s3_root import S3Root
from tradingbot.domain.timeframes import (
    TimeframeError,
    check_venue_timeframe,
    next_open_ms,
    timeframe_ms,
    unified_symbol,
)
from tradingbot.errors import DependencyUnavailable, PermanentError

if TYPE_CHECKING:
    import pandas as pd

HISTORY_EXCHANGES: Final = ("binanceusdm", "okx")
PAGE_BARS: Final = {"binanceusdm": 1000, "okx": 300}  # ccxt's per-call maximum (see above)
# venues whose pages count from the newest end of the requested range (OKX, see above): each page is
# bounded to its own window
_ANCHORED_AT_END: Final = frozenset({"okx"})
CHECKPOINT_BARS: Final = 50_000
SAMPLE_SYMBOLS: Final = ("BTCUSDT", "ETHUSDT", "SOLUSDT")  # shared/tradingbot/datasets/ (README there)
SAMPLE_TIMEFRAME: Final = "1h"


class HistoryError(PermanentError, ValueError):
    """Bad input (symbol, timeframe, date) or a venue answer that cannot be stored (missing or
    non-numeric values, bars out of order, a gap without ``allow_gaps``)."""


class HistoryUnavailable(DependencyUnavailable):
    """The venue (or S3) did not answer in time or refused for now; run again to resume."""


@dataclass(frozen=True)
class HistoryKey:
    exchange: str
    symbol: str  # exchange-style ticker: ETHUSDT
    timeframe: str

    @classmethod
    def parse(cls, exchange: str, symbol: str, timeframe: str) -> HistoryKey:
        ex = exchange.strip().lower()
        if ex not in HISTORY_EXCHANGES:
            raise HistoryError(f"--exchange {exchange!r}: choose one of {', '.join(HISTORY_EXCHANGES)}")
        try:
            unified = unified_symbol(symbol)
            check_venue_timeframe(ex, timeframe)
        except (TimeframeError, ValueError) as exc:
            raise HistoryError(str(exc)) from None
        return cls(ex, unified.split("/")[0] + "USDT", timeframe)

    @property
    def unified(self) -> str:
        return unified_symbol(self.symbol)

    @property
    def relpath(self) -> str:
        return f"{self.exchange}/{self.symbol}-{self.timeframe}.parquet"

    def __str__(self) -> str:
        return f"{self.exchange} {self.symbol} {self.timeframe}"


class HistoryStore(S3Root):
    """Parquet files under a folder or an ``s3://bucket/prefix``."""

    root_error = HistoryError

    def location(self, key: HistoryKey) -> str:
        return f"{self.root}/{key.relpath}"

    def _bucket_key(self, key: HistoryKey) -> tuple[str, str]:
        return self._split(key.relpath)

    def read(self, key: HistoryKey) -> pd.DataFrame | None:
        """The stored, validated candles, or None when nothing was downloaded."""
        from tradingbot.domain.candles import CandleDataError, load_candles, validate_candles

        where = self.location(key)
        if not self.is_s3:
            if not Path(where).exists():
                return None
            try:
                return load_candles(where)
            except CandleDataError as exc:
                raise HistoryError(f"stored history is not valid ({exc}); delete {where} and download again") from None
        import pandas as pd
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, name = self._bucket_key(key)
        try:
            body = self._client().get_object(Bucket=bucket, Key=name)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise HistoryError(f"{where}: cannot read: {exc}") from None
        except BotoCoreError as exc:
            raise HistoryUnavailable(f"{where}: cannot read: {exc}") from exc
        try:
            raw = pd.read_parquet(io.BytesIO(body))
        except Exception as exc:  # pyarrow's message is the useful part
            raise HistoryError(f"{where}: not a Parquet candle file: {exc}") from None
        if "timestamp" not in raw.columns and isinstance(raw.index, pd.DatetimeIndex):
            raw = raw.reset_index(names="timestamp")
        try:
            return validate_candles(raw, source=where)
        except CandleDataError as exc:
            raise HistoryError(f"stored history is not valid ({exc}); delete {where} and download again") from None

    def write(self, key: HistoryKey, candles: pd.DataFrame) -> None:
        """Replace the stored file with ``candles`` (validated by the caller) in one step."""
        frame = candles.reset_index()
        if not self.is_s3:
            path = Path(self.location(key))
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            try:
                frame.to_parquet(tmp, index=False)
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            return
        from botocore.exceptions import BotoCoreError, ClientError

        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        bucket, name = self._bucket_key(key)
        try:  # a PUT is atomic: readers see the old object or the new one
            self._client().put_object(Bucket=bucket, Key=name, Body=buf.getvalue())
        except ClientError as exc:
            raise HistoryError(f"{self.location(key)}: cannot write: {exc}") from None
        except BotoCoreError as exc:
            raise HistoryUnavailable(f"{self.location(key)}: cannot write: {exc}") from exc


def store_from_settings() -> HistoryStore:
    from tradingbot.settings import HistorySection

    return HistoryStore(HistorySection().root())


# ---------------------------------------------------------------- download


@dataclass
class DownloadReport:
    key: HistoryKey
    location: str
    added: int = 0
    total: int = 0
    resumed_from: dt.datetime | None = None  # the last stored bar before this run
    first: dt.datetime | None = None
    last: dt.datetime | None = None
    requests: int = 0
    gaps: list[tuple[dt.datetime, dt.datetime, int]] = field(default_factory=list)  # after, before, missing bars
    note: str = ""


def _utc(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def _iso(ms: int) -> str:
    return _utc(ms).strftime("%Y-%m-%dT%H:%MZ")


def ccxt_client(exchange: str, rest_url: str | None, timeout_s: float) -> Any:
    """A public (keyless) ccxt client; ``rest_url`` replaces the venue's host (a local stand-in)."""
    import ccxt

    from tradingbot.adapters.exchange.ccxt_adapter import local_urls

    options: dict[str, Any] = {"fetchCurrencies": False, "adjustForTimeDifference": False}
    if exchange == "okx":
        options |= {"fetchMarkets": {"types": ["swap"]}, "defaultType": "swap"}
        client = ccxt.okx({"timeout": int(timeout_s * 1000), "enableRateLimit": True, "options": options})
    else:
        options |= {"defaultType": "swap", "defaultSubType": "linear"}
        client = ccxt.binanceusdm({"timeout": int(timeout_s * 1000), "enableRateLimit": True, "options": options})
    if rest_url:
        urls = local_urls("okx" if exchange == "okx" else "binanceusdm", rest_url)
        client.urls["api"] = {**client.urls["api"], **urls} if exchange != "okx" else dict(urls)
    return client


def download(
    key: HistoryKey,
    since: dt.datetime,
    *,
    store: HistoryStore,
    client: Any,
    until: dt.datetime | None = None,
    allow_gaps: bool = False,
    checkpoint_bars: int = CHECKPOINT_BARS,
    now_ms: Callable[[], int] | None = None,
    on_page: Callable[[DownloadReport], None] | None = None,
) -> DownloadReport:
    """Fetch closed bars from ``since`` (or after the last stored bar) up to ``until`` / now and
    store them; see the module docstring for the rules."""
    import ccxt
    import pandas as pd

    from tradingbot.domain.candles import OHLCV, CandleDataError, validate_candles

    tf, tf_ms = key.timeframe, timeframe_ms(key.timeframe)
    since_ms = int(since.timestamp() * 1000)
    now = (now_ms or (lambda: int(dt.datetime.now(dt.UTC).timestamp() * 1000)))()
    end_ms = min(now, int(until.timestamp() * 1000)) if until is not None else now
    if since_ms >= end_ms:
        raise HistoryError(f"--since {_iso(since_ms)} is not before {_iso(end_ms)}")
    report = DownloadReport(key, store.location(key))
    stored = store.read(key)
    prev_open: int | None = None
    if stored is not None:
        stored_first, prev_open = (int(t.value // 1_000_000) for t in (stored.index[0], stored.index[-1]))
        report.resumed_from = _utc(prev_open)
        report.total = len(stored)
        if since_ms < stored_first:
            report.note = (
                f"the stored history starts at {_iso(stored_first)}; earlier bars are not fetched "
                f"(delete {report.location} to download from {_iso(since_ms)})"
            )
        cursor = next_open_ms(prev_open, tf)
    else:
        cursor = since_ms
    pending: list[list[float]] = []  # [open_ms, o, h, l, c, v] fetched since the last write
    page_limit = PAGE_BARS[key.exchange]

    def save() -> None:
        nonlocal stored
        if not pending:
            return
        fresh = pd.DataFrame(pending, columns=["timestamp", *OHLCV])
        fresh["timestamp"] = pd.to_datetime(fresh["timestamp"].astype("int64"), unit="ms", utc=True)
        fresh = fresh.set_index("timestamp")
        combined = fresh if stored is None else pd.concat([stored, fresh])
        try:
            checked = validate_candles(combined.reset_index(), source=str(key))
        except CandleDataError as exc:
            raise HistoryError(f"{exc}; nothing of this batch was written") from None
        store.write(key, checked)
        stored = checked
        report.total = len(checked)
        pending.clear()

    def saved_so_far() -> str:
        last = report.last or report.resumed_from
        kept = f"{report.total:,} bars stored up to {last:%Y-%m-%dT%H:%MZ}" if last else "nothing stored"
        return f"{kept} in {report.location}"

    windowed = key.exchange in _ANCHORED_AT_END
    try:
        while cursor < end_ms:
            page_end = min(end_ms, cursor + page_limit * tf_ms) if windowed else end_ms  # exclusive
            try:
                rows = client.fetch_ohlcv(
                    key.unified, tf, since=cursor, limit=page_limit, params={"until": page_end - 1}
                )
            except ccxt.BadSymbol as exc:
                raise HistoryError(f"{key}: the venue has no such market ({exc})") from None
            except ccxt.NetworkError as exc:  # timeouts, connection errors, 5xx, 429/418 ("not now")
                save()
                raise HistoryUnavailable(
                    f"{key}: {type(exc).__name__} after {report.requests} request(s): {str(exc)[:200]}; "
                    f"{saved_so_far()}; run again to resume"
                ) from exc
            except ccxt.BaseError as exc:
                save()
                raise HistoryError(f"{key}: the venue refused: {str(exc)[:300]}; {saved_so_far()}") from None
            report.requests += 1
            page_rows = list(rows or [])
            try:
                checked_rows, forming = _check_page(key, page_rows, prev_open, cursor, now, tf_ms)
            except HistoryError as exc:
                save()  # the pages before this one were valid: keep them, so a rerun resumes there
                raise HistoryError(f"{exc}; {saved_so_far()}") from None
            for row in checked_rows:
                if prev_open is not None:
                    expected = next_open_ms(prev_open, tf)
                    if row[0] != expected:
                        missing = max(1, (int(row[0]) - prev_open) // tf_ms - 1)
                        if not allow_gaps:
                            save()
                            raise HistoryError(
                                f"{key}: the venue has no bars between {_iso(prev_open)} and {_iso(int(row[0]))} "
                                f"({missing} missing); {saved_so_far()}; pass --allow-gaps to store the series "
                                "with the hole"
                            )
                        report.gaps.append((_utc(prev_open), _utc(int(row[0])), missing))
                pending.append(row)
                prev_open = int(row[0])
                report.added += 1
                report.first = report.first or _utc(prev_open)
                report.last = _utc(prev_open)
            if len(pending) >= checkpoint_bars:
                save()
            if on_page is not None:
                on_page(report)
            if windowed:
                if forming or page_end >= end_ms:
                    break  # this window reached now (or --until)
                cursor = page_end  # the next window, whether or not this one had bars
                continue
            if forming or not checked_rows or len(page_rows) < page_limit:
                break  # the venue has nothing closed beyond this page
            cursor = next_open_ms(int(checked_rows[-1][0]), tf)
        save()
    finally:
        pending.clear()  # an error above already wrote what was valid; never the bad page
    if stored is None:
        raise HistoryError(
            f"{key}: the venue returned no closed bars from {_iso(since_ms)} to {_iso(end_ms)}; nothing written"
        )
    return report


def _check_page(
    key: HistoryKey, rows: list[Any], prev_open: int | None, cursor: int, now: int, tf_ms: int
) -> tuple[list[list[float]], bool]:
    """The page's closed bars as floats, oldest first; and whether it reached the forming bar.
    Raises :class:`HistoryError` naming the bar and field for a missing or non-numeric value."""
    out: list[list[float]] = []
    forming = False
    last = prev_open
    for r in rows:
        try:
            open_ms = int(r[0])
        except (TypeError, ValueError, IndexError):
            raise HistoryError(
                f"{key}: a row without an open time: {str(r)[:80]}; nothing of this page written"
            ) from None
        if open_ms < cursor:
            continue  # overlap with what we already have (same open time = same bar)
        if open_ms + tf_ms > now:
            forming = True  # the bar still forming, and anything after it: not stored
            break
        values: list[float] = [float(open_ms)]
        for name, v in zip(("open", "high", "low", "close", "volume"), r[1:6], strict=False):
            number = _number(v)
            if number is None:
                raise HistoryError(
                    f"{key}: bar {_iso(open_ms)}: {name} is missing or not a number ({v!r}); "
                    "nothing of this page written"
                )
            values.append(number)
        if len(values) != 6:
            raise HistoryError(f"{key}: bar {_iso(open_ms)}: expected 6 values, got {len(r)}")
        if last is not None and open_ms <= last:
            raise HistoryError(f"{key}: bar {_iso(open_ms)} is not after {_iso(last)}; nothing of this page written")
        last = open_ms
        out.append(values)
    return out, forming


def _number(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


# ---------------------------------------------------------------- reading for research


@dataclass(frozen=True)
class CandleChoice:
    candles: pd.DataFrame
    label: str  # what the data is, printed and stored beside every result
    location: str
    kind: str  # "history" | "sample" | "file"


def resolve_candles(
    symbol: str, timeframe: str = SAMPLE_TIMEFRAME, exchange: str = "binanceusdm", *, store: HistoryStore | None = None
) -> CandleChoice:
    """The downloaded history for the market, else the packaged offline sample (labelled so),
    else a :class:`HistoryError` saying how to get it."""
    from tradingbot.domain.candles import bundled_path, load_candles

    key = HistoryKey.parse(exchange, symbol, timeframe)
    store = store or store_from_settings()
    frame = store.read(key)
    if frame is not None:
        first, last = frame.index[0], frame.index[-1]
        label = f"history {key} {first:%Y-%m-%d} to {last:%Y-%m-%d} ({len(frame):,} bars, {store.location(key)})"
        return CandleChoice(frame, label, store.location(key), "history")
    sample = bundled_path(f"{key.symbol}-{key.timeframe}.csv.gz")
    if key.symbol in SAMPLE_SYMBOLS and key.timeframe == SAMPLE_TIMEFRAME and sample.exists():
        frame = load_candles(sample)
        first, last = frame.index[0], frame.index[-1]
        label = (
            f"offline sample {key.symbol} {key.timeframe} {first:%Y-%m-%d} to {last:%Y-%m-%d} ({len(frame):,} bars, "
            f"Binance spot, packaged): no history downloaded for {key} "
            f"(tradingbot data download --exchange {key.exchange} --symbol {key.symbol} --timeframe {key.timeframe})"
        )
        return CandleChoice(frame, label, str(sample), "sample")
    raise HistoryError(
        f"no history for {key} in {store.location(key)} and no packaged sample for it "
        f"(samples: {', '.join(SAMPLE_SYMBOLS)} {SAMPLE_TIMEFRAME}); run "
        f"`tradingbot data download --exchange {key.exchange} --symbol {key.symbol} --timeframe {key.timeframe} "
        "--since YYYY-MM-DD`"
    )
