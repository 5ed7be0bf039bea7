"""The one settings object: every knob the package reads, from the environment (and ``.env``).

Each section is its own pydantic-settings class, so a section keeps the flat variable names the
README, the CDK app (cdk/tradingbot_infra/lambdas.py) and operators already use (``DATABASE_URL``,
``VALIDATE_MIN_WIN_RATE``, ``FEED_SYMBOLS`` ...) instead of a ``SECTION__FIELD`` nesting. Every
default works on a fresh checkout; nothing here reaches the network.

Secrets never pass through ``os.environ``: on AWS the CDK gives only secret ARNs, and
``tradingbot.adapters.aws.with_secrets`` fills the secret-backed fields (``SecretStr``) of a
*copy* of these settings at cold start. This module sits below the adapters (import-linter's
layers contract) and imports nothing of the package but the domain's cost constants, so every layer can read it.

:func:`get_settings` reads once per process (a Lambda cold start); a CLI command, whose process a
test run shares with many others, builds its own ``Settings()``; tests call :func:`reset_settings`.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import AliasChoices, BeforeValidator, Field, SecretStr
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from tradingbot.domain.costs import SLIPPAGE_BPS, TAKER_FEE_RATE


def _split(value: object) -> object:
    """``"a, b,,c"`` -> ``("a", "b", "c")``; lists (from code) pass through."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def _split_upper(value: object) -> object:
    parts = _split(value)
    return tuple(str(p).upper() for p in parts) if isinstance(parts, tuple | list | set | frozenset) else parts


# Comma-separated lists. NoDecode stops pydantic-settings from parsing the variable as JSON first
# (https://docs.pydantic.dev/latest/concepts/pydantic_settings/#disabling-json-parsing; 2.7+).
CommaList = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_split)]
UpperCommaSet = Annotated[frozenset[str], NoDecode, BeforeValidator(_split_upper)]
CommaSet = Annotated[frozenset[str], NoDecode, BeforeValidator(_split)]
Policy = Literal["skip", "reject"]

_ENV = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

# ---- AI defaults (the voters' defaults too: tradingbot.adapters.ai.defaults re-exports them)
# Fast, inexpensive models: a vote must arrive inside an 8 s budget and is asked on every alert.
DEFAULT_TIMEOUT_S: Final = 8.0
DEFAULT_OPENAI_MODEL: Final = "gpt-4.1-mini"
DEFAULT_ANTHROPIC_MODEL: Final = "claude-haiku-4-5"
# Llama 3.3 70B is served on demand through the cross-region inference profile (the "us." prefix).
DEFAULT_BEDROCK_MODEL: Final = "us.meta.llama3-3-70b-instruct-v1:0"
DEFAULT_COMPATIBLE_MODEL: Final = "llama3.1:8b"


class PersistenceSection(BaseSettings):
    """PostgreSQL, Redis and the key-encryption key. With no URLs the local servers that
    ``tradingbot servers up`` started are used (``<data_dir>/servers.json``); with no KEK a random
    one is created once in ``<data_dir>/kek`` (mode 0600)."""

    model_config = _ENV

    database_url: SecretStr | None = Field(
        default=None, validation_alias="DATABASE_URL", description="SQLAlchemy URL; on AWS composed from DB_SECRET_ARN"
    )
    redis_url: SecretStr | None = Field(
        default=None,
        validation_alias="REDIS_URL",
        description="redis:// or rediss:// URL; on AWS composed from REDIS_HOST",
    )
    db_connect_timeout_s: float = Field(
        default=5.0,
        validation_alias="DB_CONNECT_TIMEOUT_S",
        description="a cold start must not hang on an unreachable database",
    )
    db_statement_timeout_ms: int = Field(
        default=10_000,
        validation_alias="DB_STATEMENT_TIMEOUT_MS",
        description="sent as a startup parameter (no SET, so RDS Proxy does not pin the session); 0 disables",
    )
    db_pool_size: int = Field(
        default=1,
        ge=1,
        validation_alias="DB_POOL_SIZE",
        description="1 per Lambda container; the threaded local server asks for more",
    )
    redis_timeout_s: float = Field(
        default=0.25, validation_alias="REDIS_TIMEOUT_S", description="socket timeout of every Redis call"
    )
    kek: SecretStr | None = Field(
        default=None, validation_alias="TRADINGBOT_KEK", description="base64 of 32 random bytes"
    )
    kek_previous: SecretStr | None = Field(
        default=None,
        validation_alias="TRADINGBOT_KEK_PREVIOUS",
        description="older KEKs, comma separated, readable during a rotation",
    )
    kek_secret_id: str | None = Field(
        default=None,
        validation_alias="TRADINGBOT_KEK_SECRET_ID",
        description="on AWS: the Secrets Manager secret holding the KEK "
        "(AWSCURRENT encrypts, AWSPREVIOUS stays readable)",
    )
    data_dir: Path = Field(
        default=Path(".data"),
        validation_alias="TRADINGBOT_DATA_DIR",
        description="local state: servers.json, the generated KEK, the demo token",
    )


class ValidationPolicy(BaseSettings):
    """The validate stage's rules (the source document's defaults)."""

    model_config = _ENV

    min_ai_confidence: float = Field(
        default=70.0,
        validation_alias="VALIDATE_MIN_AI_CONFIDENCE",
        description="the AI ensemble's confidence (0-100) a trade needs",
    )
    min_win_rate: float = Field(
        default=0.55,
        validation_alias="VALIDATE_MIN_WIN_RATE",
        description="the alert strategy's backtested win rate (0-1) a trade needs",
    )
    min_reward_risk: float = Field(
        default=1.5,
        validation_alias="VALIDATE_MIN_REWARD_RISK",
        description="take-profit distance over stop-loss distance",
    )
    when_model_unavailable: Policy = Field(
        default="skip",
        validation_alias="VALIDATE_WHEN_MODEL_UNAVAILABLE",
        description="no model deployed: 'skip' records the rule as skipped with the reason, 'reject' refuses the trade",
    )
    when_ai_unavailable: Policy = Field(
        default="skip",
        validation_alias="VALIDATE_WHEN_AI_UNAVAILABLE",
        description="no AI keys set: 'skip' or 'reject', as above",
    )
    default_stop_loss_pct: Decimal = Field(
        default=Decimal("2.0"),
        validation_alias="DEFAULT_STOP_LOSS_PCT",
        description="stop-loss distance (%) when the alert names none",
    )
    default_take_profit_pct: Decimal = Field(
        default=Decimal("4.0"),
        validation_alias="DEFAULT_TAKE_PROFIT_PCT",
        description="take-profit distance (%) when the alert names none",
    )
    max_price_deviation_pct: Decimal = Field(
        default=Decimal("1.0"),
        gt=0,
        validation_alias="VALIDATE_MAX_PRICE_DEVIATION_PCT",
        description="the alert's price may differ from the feed's live last/mark price by at most this (%)",
    )
    live_price_max_age_s: float = Field(
        default=5.0,
        gt=0,
        validation_alias="VALIDATE_LIVE_PRICE_MAX_AGE_S",
        description="a feed price older than this is not live (the price sanity rule then fails closed)",
    )
    fee_rate: Decimal = Field(
        default=TAKER_FEE_RATE,
        ge=0,
        lt=Decimal("0.05"),
        validation_alias="TRADING_FEE_RATE",
        description="taker fee per side (fraction of notional): the win-rate backtest and the paper exchange",
    )
    slippage_bps: Decimal = Field(
        default=SLIPPAGE_BPS,
        ge=0,
        lt=1000,
        validation_alias="TRADING_SLIPPAGE_BPS",
        description="adverse slippage per fill (basis points): the win-rate backtest and the paper exchange",
    )


class TelegramSection(BaseSettings):
    """The notify stage. No token: messages go to the log only. On AWS from TELEGRAM_SECRET_ARN."""

    model_config = _ENV

    telegram_bot_token: SecretStr | None = Field(
        default=None, validation_alias="TELEGRAM_BOT_TOKEN", description="the Bot API token (part of every request URL)"
    )
    telegram_chat_id: str = Field(default="", validation_alias="TELEGRAM_CHAT_ID", description="where messages go")
    telegram_api_url: str = Field(
        default="https://api.telegram.org",
        validation_alias="TELEGRAM_API_URL",
        description="the Bot API's base URL (a local fake in tests)",
    )
    # issue 17: Telegram commands
    telegram_webhook_secret: SecretStr | None = Field(
        default=None,
        validation_alias="TELEGRAM_WEBHOOK_SECRET",
        description="setWebhook's secret_token, checked in X-Telegram-Bot-Api-Secret-Token (1-256 of A-Z a-z 0-9 _ -); "
        "unset: the command webhook refuses every update",
    )
    telegram_polling: bool = Field(
        default=False,
        validation_alias="TELEGRAM_POLLING",
        description="`serve` answers commands by long polling (getUpdates) instead of a public webhook",
    )
    telegram_confirm_ttl_s: int = Field(
        default=120,
        ge=10,
        validation_alias="TELEGRAM_CONFIRM_TTL_S",
        description="how long a /close waits for /confirm",
    )
    operator_token_ttl_days: float = Field(
        default=30.0,
        gt=0,
        validation_alias="OPERATOR_TOKEN_TTL_DAYS",
        description="`serve`'s demo operator token's life",
    )
    # issue 17: the dashboard's sign-in on AWS (the CDK app sets both on the operator_api function)
    operator_login_url: str = Field(
        default="",
        validation_alias="OPERATOR_LOGIN_URL",
        description="the operator user pool's domain (https://PREFIX.auth.REGION.amazoncognito.com): the dashboard "
        "signs in there (authorization code + PKCE); empty: the page asks for an operator token (`serve`)",
    )
    operator_login_client_id: str = Field(
        default="",
        validation_alias="OPERATOR_LOGIN_CLIENT_ID",
        description="the user pool's public app client (no secret) the dashboard signs in with",
    )

    def telegram_token(self) -> str:
        """The token to put in the request URL, or "" when none is configured."""
        return self.telegram_bot_token.get_secret_value() if self.telegram_bot_token else ""


class PipelineSection(ValidationPolicy, TelegramSection):
    """What the pipeline's stages read as ``rt.settings``: the webhook, the candles, and (inherited,
    so ``rt.settings.min_win_rate`` keeps working) the validation policy and Telegram."""

    model_config = _ENV

    state_machine_arn: str = Field(
        default="arn:aws:states:us-east-1:123456789012:stateMachine:trading-pipeline",
        validation_alias="STATE_MACHINE_ARN",
        description="the pipeline the webhook starts (the CDK sets it)",
    )
    alert_max_age_s: int = Field(
        default=300,
        validation_alias="ALERT_MAX_AGE_S",
        description="TradingView retries and clock skew: older alerts are refused as replays",
    )
    webhook_max_body_bytes: int = Field(
        default=8192, validation_alias="WEBHOOK_MAX_BODY_BYTES", description="larger bodies are refused before parsing"
    )
    tradingview_ip_allowlist: CommaSet = Field(
        default=frozenset(),
        validation_alias="TRADINGVIEW_IP_ALLOWLIST",
        description="comma separated; empty = no IP check (TradingView's documented sources are in the README)",
    )
    symbol_allowlist: UpperCommaSet = Field(
        default=frozenset({"BTCUSDT", "ETHUSDT", "SOLUSDT"}),
        validation_alias="SYMBOL_ALLOWLIST",
        description="comma separated; alerts for other symbols are refused",
    )
    bad_token_limit: int = Field(
        default=5,
        ge=1,
        validation_alias="WEBHOOK_BAD_TOKEN_LIMIT",
        description="wrong tokens from one source IP within the sliding window that lock the IP out",
    )
    bad_token_window_s: int = Field(
        default=60, ge=1, validation_alias="WEBHOOK_BAD_TOKEN_WINDOW_S", description="the bad-token sliding window"
    )
    bad_token_lockout_s: int = Field(
        default=900,
        ge=1,
        validation_alias="WEBHOOK_BAD_TOKEN_LOCKOUT_S",
        description="how long a locked-out source IP is refused (429, from Redis alone: no body parsed, no "
        "database touched)",
    )
    lockout_exempt_ips: CommaSet = Field(
        # TradingView's documented webhook sources (https://www.tradingview.com/support/solutions/43000529348/):
        # every TradingView user's alerts come from these four, so locking one out on someone else's wrong
        # tokens would lock out our own alerts; their wrong tokens are still refused (401) and counted.
        # Loopback too: behind a tunnel or proxy in front of `serve` every sender arrives from it.
        default=frozenset({"52.89.214.238", "34.212.75.30", "54.218.53.128", "52.32.178.7", "127.0.0.1", "::1"}),
        validation_alias="WEBHOOK_LOCKOUT_EXEMPT_IPS",
        description="comma separated source IPs never locked out by wrong tokens (default: TradingView's four "
        "and loopback)",
    )
    account_alerts_per_minute: int = Field(
        # 100 a second: the sustained rate the local runtime is built to acknowledge (issue 16's burst
        # targets are one account's alerts); lower it to bound what a leaked token can start
        default=6000,
        ge=1,
        validation_alias="WEBHOOK_ACCOUNT_ALERTS_PER_MINUTE",
        description="alerts one account may have authenticated per minute; beyond it 429 and tallied (a "
        "redelivery of an alert already stored still answers its id)",
    )
    refusal_samples_per_hour: int = Field(
        default=5,
        ge=0,
        validation_alias="WEBHOOK_REFUSAL_SAMPLES_PER_HOUR",
        description="refused bodies kept (truncated, token masked) per refusal reason and hour",
    )
    refusal_sources_per_minute: int = Field(
        default=100,
        ge=1,
        validation_alias="WEBHOOK_REFUSAL_SOURCES_PER_MINUTE",
        description="distinct source IPs counted per refusal reason and minute; more are counted as '*other*'",
    )
    client_cert_subject: str = Field(
        default="",
        validation_alias="WEBHOOK_CLIENT_CERT_SUBJECT",
        description="when set (the CDK sets it with mutual TLS), the client certificate's subject must hold "
        "every comma-separated RDN given, e.g. 'CN=TradingView Webhooks,O=TradingView\\, Inc.'",
    )
    health_token_sha256: str = Field(
        default="",
        pattern=r"^([0-9a-f]{64})?$",
        validation_alias="HEALTH_TOKEN_SHA256",
        description="SHA-256 (hex) of a token that unlocks the detailed /health besides operator tokens; only "
        "the digest is configured, never the token",
    )
    candles_for_signals: int = Field(
        default=500,
        ge=2,
        validation_alias="PIPELINE_CANDLES",
        description="closed candles the predict, vote and strategies stages read (at most)",
    )
    min_candles: int = Field(
        default=300,
        ge=2,
        validation_alias="PIPELINE_MIN_CANDLES",
        description="fewer closed candles than this in the feed's cache: the stage fails closed (too short)",
    )
    candles_grace_s: float = Field(
        default=30.0,
        ge=0,
        validation_alias="PIPELINE_CANDLES_GRACE_S",
        description="the last closed bar may be one interval plus this old before the candles count as stale",
    )
    paper_reference_venue: Literal["binanceusdm", "okx"] = Field(
        default="binanceusdm",
        validation_alias="PAPER_REFERENCE_VENUE",
        description="whose market a paper account's candles and prices come from",
    )
    backfill_timeout_s: float = Field(
        default=10.0,
        gt=0,
        validation_alias="PIPELINE_BACKFILL_TIMEOUT_S",
        description="per request of the REST backfill that fills a cold candle cache (ccxt fetch_ohlcv)",
    )

    # issue 16: re-drive of accepted alerts that have no decision (tradingbot.pipeline.redrive)
    redrive_grace_s: float = Field(
        default=60.0,
        ge=0,
        validation_alias="REDRIVE_GRACE_S",
        description="an accepted alert without a decision this long after it arrived is re-driven by the sweeper",
    )
    redrive_max_age_s: float = Field(
        default=900.0,
        gt=0,
        validation_alias="REDRIVE_MAX_AGE_S",
        description="an alert accepted longer ago than this is not re-driven (too late to trade on); marked failed",
    )
    redrive_batch: int = Field(
        default=100, ge=1, validation_alias="REDRIVE_BATCH", description="undecided alerts one sweep looks at, at most"
    )

    def symbols(self) -> set[str]:
        return set(self.symbol_allowlist)

    def ip_allowlist(self) -> set[str]:
        return set(self.tradingview_ip_allowlist)


class AISection(BaseSettings):
    """The AI ensemble. A voter exists only when its credentials/endpoint are set: no key, no voter,
    no pretend vote. Bedrock uses the ambient AWS credentials, so ``BEDROCK_REGION`` switches it on.
    Field names are the variable names (case-insensitive): ``openai_api_key`` <- ``OPENAI_API_KEY``."""

    model_config = _ENV

    openai_api_key: SecretStr | None = Field(default=None, description="on AWS from OPENAI_SECRET_ARN")
    anthropic_api_key: SecretStr | None = Field(default=None, description="on AWS from ANTHROPIC_SECRET_ARN")
    bedrock_region: str | None = Field(default=None, description="the Bedrock region; unset = no Bedrock voter")
    ai_openai_model: str = Field(default=DEFAULT_OPENAI_MODEL, description="OpenAI model id")
    ai_openai_base_url: str | None = Field(default=None, description="OpenAI API base URL (a proxy or a fake)")
    ai_anthropic_model: str = Field(default=DEFAULT_ANTHROPIC_MODEL, description="Anthropic model id")
    ai_anthropic_base_url: str | None = Field(default=None, description="Anthropic API base URL")
    ai_bedrock_model: str = Field(default=DEFAULT_BEDROCK_MODEL, description="Bedrock model or inference profile")
    ai_openai_compatible_base_url: str | None = Field(
        default=None,
        description="an OpenAI-compatible endpoint (e.g. Ollama http://127.0.0.1:11434/v1); when "
        "set it takes the Llama seat instead of Bedrock",
    )
    ai_openai_compatible_model: str = Field(default=DEFAULT_COMPATIBLE_MODEL, description="its model name")
    ai_openai_compatible_api_key: SecretStr | None = Field(default=None, description="its key, if it wants one")
    ai_timeout_s: float = Field(default=DEFAULT_TIMEOUT_S, description="per-voter request timeout")
    ai_cache_ttl_s: int = Field(default=300, description="how long a vote on the same brief is reused")
    ai_daily_cap_openai_usd: float = Field(default=5.0, description="daily spend cap (UTC day); <= 0: no cap")
    ai_daily_cap_anthropic_usd: float = Field(default=5.0, description="daily spend cap (UTC day); <= 0: no cap")
    ai_daily_cap_bedrock_usd: float = Field(default=5.0, description="daily spend cap (UTC day); <= 0: no cap")

    def spend_caps(self) -> dict[str, float]:
        caps = {
            "openai": self.ai_daily_cap_openai_usd,
            "anthropic": self.ai_daily_cap_anthropic_usd,
            "bedrock": self.ai_daily_cap_bedrock_usd,
        }
        return {k: v for k, v in caps.items() if v > 0}


class FeedSection(BaseSettings):
    """The live market feed (``FEED_*``; the Fargate task's ``REDIS_URL`` is composed by its
    Dockerfile from the task's environment and the AUTH token ECS injects)."""

    model_config = SettingsConfigDict(env_prefix="FEED_", extra="ignore", populate_by_name=True)

    symbols: CommaList = Field(default=("BTC/USDT:USDT",), description="unified symbols, comma separated")
    exchanges: Annotated[tuple[Literal["binanceusdm", "okx"], ...], NoDecode, BeforeValidator(_split)] = Field(
        default=("binanceusdm",), description="venues, comma separated: binanceusdm, okx"
    )
    timeframes: CommaList = Field(default=("1m", "1h"), description="candle timeframes, comma separated")
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("FEED_REDIS_URL", "REDIS_URL", "redis_url"),
        description="where the feed writes",
    )
    binance_ws_url: str = Field(default="wss://fstream.binance.com", description="Binance USD-M streams")
    binance_rest_url: str = Field(default="https://fapi.binance.com", description="Binance USD-M REST (backfill)")
    okx_ws_url: str = Field(default="wss://ws.okx.com:8443/ws/v5", description="OKX v5 streams")
    okx_rest_url: str = Field(default="https://www.okx.com", description="OKX REST (backfill)")
    streams_per_connection: int = Field(default=0, description="0 = the exchange's default (adapters/feed/pool.py)")
    health_host: str = Field(default="0.0.0.0", description="the ECS health check reaches the task's own port")
    health_port: int = Field(default=8080, description="/health port")
    fresh_s: float = Field(default=10.0, description="health: a connection silent for longer is unhealthy")
    idle_timeout_s: float = Field(default=30.0, description="no frame for this long: ping once, then reconnect")
    backoff_base_s: float = Field(default=0.5, description="first reconnect delay (doubles, with jitter)")
    backoff_cap_s: float = Field(default=30.0, description="longest reconnect delay")
    rest_timeout_s: float = Field(default=10.0, description="backfill request timeout")
    max_closed_queue: int = Field(default=10_000, description="closed bars buffered before the oldest are dropped")
    candles_kept: int = Field(default=500, description="bars kept per symbol and timeframe in Redis")
    warmup: bool = Field(default=True, description="backfill the last candles_kept bars over REST on the first bar")
    metrics_every_s: float = Field(default=60.0, description="one metrics log line per interval")


class ExchangeSection(BaseSettings):
    """The order path's venues (``EXCHANGE_*``): their base URLs, and the reconciler's schedule.

    The URLs are the defaults of every live account; an account overrides them with its own
    ``venue_urls`` (``tradingbot accounts endpoints --name NAME --rest-url ... --ws-url ...``), e.g. an OKX
    account of the EEA entity on ``https://my.okx.com``. Demo/testnet accounts use the ``*_testnet_*``
    hosts (Binance's demo trading; OKX serves demo trading from its production REST host with the
    ``x-simulated-trading: 1`` header, and from its own WebSocket host)."""

    model_config = SettingsConfigDict(env_prefix="EXCHANGE_", extra="ignore", populate_by_name=True)

    # https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info
    binanceusdm_rest_url: str = Field(default="https://fapi.binance.com", description="Binance USD-M REST, live")
    binanceusdm_testnet_rest_url: str = Field(
        default="https://demo-fapi.binance.com", description="Binance USD-M REST, demo trading (ccxt's demo urls)"
    )
    binanceusdm_ws_url: str = Field(default="wss://fstream.binance.com", description="Binance USD-M streams, live")
    binanceusdm_testnet_ws_url: str = Field(
        default="wss://fstream.binancefuture.com", description="Binance USD-M streams, demo trading"
    )
    # https://www.okx.com/docs-v5/en/#overview-production-trading-services (regional hosts: my.okx.com, app.okx.com)
    okx_rest_url: str = Field(default="https://www.okx.com", description="OKX v5 REST (live and demo)")
    okx_ws_url: str = Field(default="wss://ws.okx.com:8443/ws/v5", description="OKX v5 WebSocket, live")
    okx_testnet_ws_url: str = Field(
        default="wss://wspap.okx.com:8443/ws/v5", description="OKX v5 WebSocket, demo trading"
    )
    reconcile_every_s: float = Field(
        default=60.0, gt=0, description="`tradingbot serve`: seconds between reconcile passes (AWS: every minute)"
    )
    reconcile_fix: bool = Field(default=True, description="scheduled passes repair what they can (else report only)")
    reconcile_unknown_grace_s: float = Field(
        default=900.0, gt=0, description="a sent order invisible to every lookup this long is taken as never placed"
    )
    reconcile_resend_unplaced: bool = Field(
        default=True,
        description="an entry taken as never placed (after reconcile_unknown_grace_s) is sent again under its client "
        "id by the scheduled pass, after the kill switch and the order gate (false: it is failed, the decision "
        "rejected); the entry is then up to that grace late",
    )
    reconcile_resend_max_age_s: float = Field(
        default=1200.0, gt=0,
        description="an entry is sent again by reconcile only while its order row (written seconds after the "
        "alert) is at most this old: the 900 s read-lag grace plus 5 minutes; older it is abandoned "
        "(`stale_entry`). Its price must also be within VALIDATE_MAX_PRICE_DEVIATION_PCT of the venue's mark "
        "(else `price_moved`)",
    )  # fmt: skip
    # issue 15 accounting (pipeline/accounting.py): the venue's trades, funding and balance, synced by
    # every reconcile pass and after every execution
    accounting_overlap_s: float = Field(
        default=600.0, ge=0,
        description="each accounting sync re-reads this far before its cursor (the venues' trade lists can lag)",
    )  # fmt: skip
    accounting_first_lookback_days: float = Field(
        default=7.0, gt=0, le=90,
        description="a live account's first sync reads this far back (paper: since the account was created)",
    )  # fmt: skip
    accounting_after_execute: bool = Field(
        default=True, description="sync an account's trades, funding and equity right after each of its executions"
    )
    accounting_execute_reserve_s: float = Field(
        default=12.0, gt=0,
        description="the sync after an execution runs only while this much of the execute Lambda's time is left",
    )  # fmt: skip

    def rest_url(self, venue: str, *, testnet: bool) -> str:
        """The default REST base URL of ``venue`` ('binanceusdm' | 'okx')."""
        if venue == "okx":
            return self.okx_rest_url
        return self.binanceusdm_testnet_rest_url if testnet else self.binanceusdm_rest_url

    def ws_url(self, venue: str, *, testnet: bool) -> str:
        """The default WebSocket base URL of ``venue``."""
        if venue == "okx":
            return self.okx_testnet_ws_url if testnet else self.okx_ws_url
        return self.binanceusdm_testnet_ws_url if testnet else self.binanceusdm_ws_url


class AwsSection(BaseSettings):
    """What the CDK app gives each Lambda instead of secrets: ARNs and hosts. The region also
    addresses Step Functions. Locally all of it is unset and nothing is fetched."""

    model_config = _ENV

    region: str = Field(default="us-east-1", validation_alias="AWS_REGION", description="set by Lambda itself")
    db_secret_arn: str | None = Field(
        default=None,
        validation_alias="DB_SECRET_ARN",
        description="RDS credentials (username, password, host, port, dbname)",
    )
    db_host: str | None = Field(
        default=None,
        validation_alias="DB_HOST",
        description="the RDS Proxy endpoint (wins over the secret's instance host)",
    )
    db_port: int | None = Field(default=None, validation_alias="DB_PORT", description="else the secret's port")
    db_name: str | None = Field(default=None, validation_alias="DB_NAME", description="else the secret's dbname")
    db_sslmode: str | None = Field(
        default=None,
        validation_alias="DB_SSLMODE",
        description="'require' or 'verify-full': verify the proxy's certificate",
    )
    redis_host: str | None = Field(default=None, validation_alias="REDIS_HOST", description="ElastiCache endpoint")
    redis_port: int = Field(default=6379, validation_alias="REDIS_PORT", description="ElastiCache port")
    redis_tls: bool = Field(default=False, validation_alias="REDIS_TLS", description="rediss:// (in-transit TLS)")
    redis_auth_secret_arn: str | None = Field(
        default=None,
        validation_alias="REDIS_AUTH_SECRET_ARN",
        description="the Redis AUTH token (a plain string secret)",
    )
    openai_secret_arn: str | None = Field(
        default=None, validation_alias="OPENAI_SECRET_ARN", description='{"api_key": ...}'
    )
    anthropic_secret_arn: str | None = Field(
        default=None, validation_alias="ANTHROPIC_SECRET_ARN", description='{"api_key": ...}'
    )
    telegram_secret_arn: str | None = Field(
        default=None, validation_alias="TELEGRAM_SECRET_ARN", description='{"bot_token": ..., "chat_id": ...}'
    )

    def has_secrets(self) -> bool:
        """Whether any setting here points at a secret (i.e. we run on AWS)."""
        return any(
            (
                self.db_secret_arn,
                self.redis_auth_secret_arn,
                self.redis_host,
                self.openai_secret_arn,
                self.anthropic_secret_arn,
                self.telegram_secret_arn,
            )
        )


class ModelSection(BaseSettings):
    """The LSTM the predict stage serves."""

    model_config = _ENV

    artifact_uri: str = Field(
        default="",
        validation_alias="MODEL_ARTIFACT_URI",
        description="artifact folder or s3:// URI; empty = the committed model; none/off/false/0 = no model",
    )

    @property
    def disabled(self) -> bool:
        return self.artifact_uri.strip().lower() in ("none", "off", "false", "0")


class HistorySection(BaseSettings):
    """Downloaded candle history for research (``tradingbot data download``; the backtest and
    optimise commands and the optimisation worker read it). The venue's REST base URL is the
    feed's (``FEED_BINANCE_REST_URL`` / ``FEED_OKX_REST_URL``)."""

    model_config = _ENV

    uri: str | None = Field(
        default=None,
        validation_alias="HISTORY_URI",
        description="folder or s3://bucket/prefix; unset: s3://$ARTIFACTS_BUCKET/data/history on AWS "
        "(the backtest function may read data/*), else .data/history",
    )
    artifacts_bucket: str | None = Field(
        default=None, validation_alias="ARTIFACTS_BUCKET", description="the project bucket (the CDK sets it)"
    )
    timeout_s: float = Field(
        default=10.0, gt=0, validation_alias="HISTORY_TIMEOUT_S", description="per REST request of a download"
    )

    def root(self) -> str:
        if self.uri:
            return self.uri
        return f"s3://{self.artifacts_bucket}/data/history" if self.artifacts_bucket else ".data/history"


class OptimiseSection(BaseSettings):
    """Parameter optimisation (issue 18): when a walk-forward's parameters are promoted to the live
    parameters the Strategies stage and the win-rate rule use, and where the AWS fan-out keeps its
    per-fold results (tradingbot.pipeline.optimise)."""

    model_config = _ENV

    promotion_margin: float = Field(
        default=0.01,
        ge=0,
        validation_alias="OPTIMISE_PROMOTION_MARGIN",
        description="total out-of-sample return (fraction; 0.01 = 1 percentage point) by which a candidate must "
        "beat both the current parameters and buy-and-hold over the same test bars",
    )
    min_deflated_sharpe: float = Field(
        default=0.5,
        ge=0,
        lt=1,
        validation_alias="OPTIMISE_MIN_DEFLATED_SHARPE",
        description="least deflated Sharpe ratio (Bailey & Lopez de Prado 2014) of the stitched out-of-sample "
        "returns for a promotion; 0 disables the multiple-testing guard",
    )
    min_oos_trades: int = Field(
        default=5,
        ge=1,
        validation_alias="OPTIMISE_MIN_OOS_TRADES",
        description="out-of-sample trades a promotion needs",
    )
    results_uri: str | None = Field(
        default=None,
        validation_alias="OPTIMISE_RESULTS_URI",
        description="folder or s3://bucket/prefix for the fan-out's per-fold results; unset: "
        "s3://$ARTIFACTS_BUCKET/optimise on AWS, else .data/optimise",
    )
    artifacts_bucket: str | None = Field(
        default=None, validation_alias="ARTIFACTS_BUCKET", description="the project bucket (the CDK sets it)"
    )

    def results_root(self) -> str:
        if self.results_uri:
            return self.results_uri
        return f"s3://{self.artifacts_bucket}/optimise" if self.artifacts_bucket else ".data/optimise"


class LocalRunSection(BaseSettings):
    """``tradingbot serve`` (``make run``): where its market comes from."""

    model_config = _ENV

    market: Literal["auto", "live", "replay"] = Field(
        default="auto",
        validation_alias="LOCAL_MARKET",
        description="auto: the live feed (FEED_*) when the venue answers, else the labelled offline replay; "
        "live: the feed only; replay: the offline replay only",
    )
    probe_timeout_s: float = Field(
        default=3.0, gt=0, validation_alias="LOCAL_MARKET_PROBE_S", description="how long the venue check waits"
    )
    # issue 16: the local Step Functions runtime (tradingbot.entrypoints.local.executions)
    workers: int = Field(
        default=2,
        ge=1,
        validation_alias="LOCAL_WORKERS",
        description="worker processes that run executions (the HTTP server only acknowledges)",
    )
    worker_threads: int = Field(
        default=4, ge=1, validation_alias="LOCAL_WORKER_THREADS", description="executions each worker runs at once"
    )
    sweep_interval_s: float = Field(
        default=30.0,
        gt=0,
        validation_alias="LOCAL_SWEEP_INTERVAL_S",
        description="how often `serve` runs the re-drive sweeper (it also runs once at start)",
    )
    fault_pause: str = Field(
        default="",
        validation_alias="LOCAL_FAULT_PAUSE",
        description="fault drills only: 'State:seconds' (or 'State+:seconds', after its task returned) makes "
        "the local runtime pause there, so a test can kill -9 `serve` inside that stage; 'A,B+,C:seconds' "
        "deals the states out round robin by execution row id (one execution inside each); empty = off",
    )
    http_read_timeout_s: float = Field(
        default=5.0,
        gt=0,
        validation_alias="LOCAL_HTTP_READ_TIMEOUT_S",
        description="the local server's budget to receive one request's headers and body (slow clients are "
        "cut off with 408 and counted); also the idle time a kept-alive connection may hold a thread",
    )


class Settings(BaseSettings):
    """All sections. Each reads its own variables; this root reads nothing itself, so a variable
    named like a section (``AI``, ``FEED`` ...) cannot replace one."""

    persistence: PersistenceSection = Field(default_factory=PersistenceSection)
    pipeline: PipelineSection = Field(default_factory=PipelineSection)
    ai: AISection = Field(default_factory=AISection)
    feed: FeedSection = Field(default_factory=FeedSection)
    exchange: ExchangeSection = Field(default_factory=ExchangeSection)
    aws: AwsSection = Field(default_factory=AwsSection)
    model: ModelSection = Field(default_factory=ModelSection)
    history: HistorySection = Field(default_factory=HistorySection)
    optimise: OptimiseSection = Field(default_factory=OptimiseSection)
    local: LocalRunSection = Field(default_factory=LocalRunSection)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once (a Lambda cold start). Secret-backed fields are filled by
    ``tradingbot.adapters.aws.with_secrets`` where the runtime is built, not here."""
    return Settings()


def reset_settings() -> None:
    """Forget the cached settings (tests that change the environment)."""
    get_settings.cache_clear()
