"""Feed settings, read once at start from ``FEED_*`` variables (and ``REDIS_URL``)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tradingbot.adapters.feed.messages import BINANCE, OKX
from tradingbot.adapters.feed.pool import Subscription, Venue


class FeedSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FEED_", extra="ignore")

    symbols: str = "BTC/USDT:USDT"  # comma-separated unified symbols
    exchanges: str = BINANCE  # comma-separated: binanceusdm, okx
    timeframes: str = "1m,1h"
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0", validation_alias=AliasChoices("FEED_REDIS_URL", "REDIS_URL", "redis_url")
    )
    binance_ws_url: str = "wss://fstream.binance.com"
    binance_rest_url: str = "https://fapi.binance.com"
    okx_ws_url: str = "wss://ws.okx.com:8443/ws/v5"
    okx_rest_url: str = "https://www.okx.com"
    streams_per_connection: int = 0  # 0 = the exchange's default (pool.py)
    health_host: str = "0.0.0.0"  # the ECS health check reaches the task's own port
    health_port: int = 8080
    fresh_s: float = 10.0  # health: a connection silent for longer is unhealthy
    idle_timeout_s: float = 30.0  # no frame for this long: ping once, then reconnect
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    rest_timeout_s: float = 10.0
    max_closed_queue: int = 10_000
    candles_kept: int = 500
    warmup: bool = True  # backfill the last ``candles_kept`` bars over REST on the first bar
    metrics_every_s: float = 60.0

    def subscriptions(self) -> list[Subscription]:
        tfs = tuple(t.strip() for t in self.timeframes.split(",") if t.strip())
        return [Subscription(s.strip(), tfs) for s in self.symbols.split(",") if s.strip()]

    def venues(self) -> list[Venue]:
        urls = {
            BINANCE: (self.binance_ws_url, self.binance_rest_url),
            OKX: (self.okx_ws_url, self.okx_rest_url),
        }
        names = [e.strip() for e in self.exchanges.split(",") if e.strip()]
        unknown = [n for n in names if n not in urls]
        if unknown:
            raise ValueError(f"unsupported exchanges {unknown}; use {sorted(urls)}")
        return [Venue(n, *urls[n], streams_per_connection=self.streams_per_connection) for n in names]
