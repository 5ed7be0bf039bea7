"""Pipeline settings: read once per cold start; every default works locally."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class PipelineSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    state_machine_arn: str = Field(
        default="arn:aws:states:us-east-1:123456789012:stateMachine:trading-pipeline",
        validation_alias="STATE_MACHINE_ARN",
    )
    aws_region: str = Field(default="us-east-1", validation_alias="AWS_REGION")
    # TradingView retries and clock skew: alerts older than this are refused as replays
    alert_max_age_s: int = Field(default=300, validation_alias="ALERT_MAX_AGE_S")
    webhook_max_body_bytes: int = Field(default=8192, validation_alias="WEBHOOK_MAX_BODY_BYTES")
    # comma separated; empty = no IP check. TradingView's documented sources are listed in the README.
    tradingview_ip_allowlist: str = Field(default="", validation_alias="TRADINGVIEW_IP_ALLOWLIST")
    symbol_allowlist: str = Field(default="BTCUSDT,ETHUSDT,SOLUSDT", validation_alias="SYMBOL_ALLOWLIST")
    bad_token_limit: int = Field(default=5, validation_alias="WEBHOOK_BAD_TOKEN_LIMIT")
    bad_token_window_s: int = Field(default=60, validation_alias="WEBHOOK_BAD_TOKEN_WINDOW_S")

    # validation rules (source document's defaults)
    min_ai_confidence: float = Field(default=70.0, validation_alias="VALIDATE_MIN_AI_CONFIDENCE")
    min_win_rate: float = Field(default=0.55, validation_alias="VALIDATE_MIN_WIN_RATE")
    min_reward_risk: float = Field(default=1.5, validation_alias="VALIDATE_MIN_REWARD_RISK")
    # What a rule does when its input is unavailable (no model deployed, no AI keys set):
    # "skip" records the rule as skipped with the reason; "reject" refuses the trade.
    when_model_unavailable: str = Field(default="skip", validation_alias="VALIDATE_WHEN_MODEL_UNAVAILABLE")
    when_ai_unavailable: str = Field(default="skip", validation_alias="VALIDATE_WHEN_AI_UNAVAILABLE")
    default_stop_loss_pct: float = Field(default=2.0, validation_alias="DEFAULT_STOP_LOSS_PCT")
    default_take_profit_pct: float = Field(default=4.0, validation_alias="DEFAULT_TAKE_PROFIT_PCT")
    candles_for_signals: int = Field(default=500, validation_alias="PIPELINE_CANDLES")
    telegram_bot_token: str = Field(default="", validation_alias="TELEGRAM_BOT_TOKEN")
    telegram_chat_id: str = Field(default="", validation_alias="TELEGRAM_CHAT_ID")
    telegram_api_url: str = Field(default="https://api.telegram.org", validation_alias="TELEGRAM_API_URL")

    def symbols(self) -> set[str]:
        return {s.strip().upper() for s in self.symbol_allowlist.split(",") if s.strip()}

    def ip_allowlist(self) -> set[str]:
        return {s.strip() for s in self.tradingview_ip_allowlist.split(",") if s.strip()}


@lru_cache(maxsize=1)
def get_settings() -> PipelineSettings:
    return PipelineSettings()
