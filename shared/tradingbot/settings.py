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
        validation_alias="WEBHOOK_BAD_TOKEN_LIMIT",
        description="bad tokens per source IP and window before the IP is refused",
    )
    bad_token_window_s: int = Field(
        default=60, validation_alias="WEBHOOK_BAD_TOKEN_WINDOW_S", description="the bad-token window"
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


class Settings(BaseSettings):
    """All sections. Each reads its own variables; this root reads nothing itself, so a variable
    named like a section (``AI``, ``FEED`` ...) cannot replace one."""

    persistence: PersistenceSection = Field(default_factory=PersistenceSection)
    pipeline: PipelineSection = Field(default_factory=PipelineSection)
    ai: AISection = Field(default_factory=AISection)
    feed: FeedSection = Field(default_factory=FeedSection)
    aws: AwsSection = Field(default_factory=AwsSection)
    model: ModelSection = Field(default_factory=ModelSection)
    history: HistorySection = Field(default_factory=HistorySection)
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
