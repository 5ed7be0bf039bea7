"""Deployment settings read from CDK context (cdk.json, or ``cdk deploy -c key=value``).

Every setting is validated before a single construct is created, so a typo stops synthesis with a
message naming the setting instead of surfacing later as an odd CloudFormation error. Values given
with ``-c`` arrive as strings, so booleans and integers accept their string spellings too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aws_cdk.region_info import RegionInfo


class ConfigError(ValueError):
    """Invalid or missing CDK context; the message names the setting."""


_TRUE = {"true", "1"}
_FALSE = {"false", "0"}
_DB_CLASS = re.compile(r"^[a-z][a-z0-9]*\.[a-z0-9]+$")  # RDS class without "db.": t4g.small, r7g.large
_CACHE_NODE = re.compile(r"^cache\.[a-z][a-z0-9]*\.[a-z0-9]+$")
_SCHEDULE = re.compile(r"^(cron|rate)\(.+\)$")


def _require(ctx: Mapping[str, Any], key: str) -> Any:
    if key not in ctx or ctx[key] is None:
        raise ConfigError(f"context '{key}' is missing: set it in cdk.json or pass -c {key}=...")
    return ctx[key]


def _bool(ctx: Mapping[str, Any], key: str) -> bool:
    value = _require(ctx, key)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigError(f"context '{key}' must be a boolean (true or false), got {value!r}")


def _int(ctx: Mapping[str, Any], key: str, lo: int, hi: int) -> int:
    value = _require(ctx, key)
    if isinstance(value, bool):  # bool is an int subclass; "nat_gateways": true is a mistake
        raise ConfigError(f"context '{key}' must be an integer in [{lo}, {hi}], got {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"context '{key}' must be an integer in [{lo}, {hi}], got {value!r}") from None
    if isinstance(value, float) and value != number:
        raise ConfigError(f"context '{key}' must be an integer in [{lo}, {hi}], got {value!r}")
    if not lo <= number <= hi:
        raise ConfigError(f"context '{key}' must be an integer in [{lo}, {hi}], got {number}")
    return number


def _str(ctx: Mapping[str, Any], key: str, pattern: re.Pattern[str] | None = None, hint: str = "") -> str:
    value = _require(ctx, key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"context '{key}' must be a non-empty string, got {value!r}")
    if pattern is not None and not pattern.match(value):
        raise ConfigError(f"context '{key}' is invalid: {value!r} ({hint})")
    return value


# CloudWatch Logs accepts only these retention periods
RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)


_TICKER = re.compile(r"^[A-Z0-9]{2,20}USDT$")
_TIMEFRAME = re.compile(r"^[1-9][0-9]*[mhdw]$")


def _words(
    ctx: Mapping[str, Any], key: str, default: tuple[str, ...], pattern: re.Pattern[str], hint: str
) -> tuple[str, ...]:
    """A comma-separated list (or a JSON list) from the context, each item matching ``pattern``."""
    raw = ctx.get(key)
    if raw is None:
        return default
    items = [str(x).strip() for x in (raw if isinstance(raw, list) else str(raw).split(",")) if str(x).strip()]
    bad = [x for x in items if not pattern.match(x)]
    if not items or bad:
        raise ConfigError(f"context {key!r}: {bad or 'empty'} ({hint})")
    return tuple(items)


# ---- issue 16: ingress (waf.py, api.py)

# TradingView's documented webhook sources (https://www.tradingview.com/support/solutions/43000529348/)
TRADINGVIEW_IPS = ("52.89.214.238", "34.212.75.30", "54.218.53.128", "52.32.178.7")
# The subject TradingView documents for the client certificate its webhook server presents
# (https://www.tradingview.com/support/solutions/43000680459/); RDNs are matched, order-insensitive
TRADINGVIEW_CERT_SUBJECT = "CN=TradingView Webhooks,O=TradingView\\, Inc.,C=US"
_ACM_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}$")
_S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+$")
_DOMAIN = re.compile(r"^(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def _ipv4_list(ctx: Mapping[str, Any], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """IPv4 addresses from a JSON list or a comma-separated string; "" or [] means none."""
    import ipaddress

    raw = ctx.get(key)
    raw = list(default) if raw is None else raw
    items = [str(x).strip() for x in (raw if isinstance(raw, list) else str(raw).split(",")) if str(x).strip()]
    for item in items:
        try:
            ipaddress.IPv4Address(item)
        except ValueError:
            raise ConfigError(f"context '{key}': {item!r} is not an IPv4 address (TradingView sends from IPv4 "
                              "only)") from None  # fmt: skip
    return tuple(items)


def _optional(ctx: Mapping[str, Any], key: str, pattern: re.Pattern[str], hint: str) -> str:
    value = ctx.get(key) or ""
    if not isinstance(value, str) or (value and not pattern.match(value)):
        raise ConfigError(f"context '{key}' is invalid: {value!r} ({hint})")
    return value


def _ingress_context(ctx: Mapping[str, Any]) -> dict[str, Any]:
    """The ingress settings: the TradingView allowlist (the webhook's TRADINGVIEW_IP_ALLOWLIST and the
    WAF's IP set), the WAF's per-IP rate, and the optional custom domain with mutual TLS."""
    domain = _optional(ctx, "custom_domain_name", _DOMAIN, "a DNS name, e.g. hooks.example.com")
    certificate = _optional(ctx, "custom_domain_certificate_arn", _ACM_ARN, "an ACM certificate ARN")
    truststore = _optional(ctx, "mtls_truststore_uri", _S3_URI, "s3://bucket/key of the PEM truststore")
    if bool(domain) != bool(certificate):
        raise ConfigError("context 'custom_domain_name' and 'custom_domain_certificate_arn' go together")
    if truststore and not domain:
        raise ConfigError("context 'mtls_truststore_uri' needs 'custom_domain_name' (mutual TLS is a custom "
                          "domain feature of API Gateway)")  # fmt: skip
    rate = _int(ctx, "waf_rate_limit_per_minute", 10, 100_000) if "waf_rate_limit_per_minute" in ctx else 100
    return {
        "tradingview_ip_allowlist": _ipv4_list(ctx, "tradingview_ip_allowlist", TRADINGVIEW_IPS),
        "waf_rate_limit_per_minute": rate,
        "custom_domain_name": domain,
        "custom_domain_certificate_arn": certificate,
        "mtls_truststore_uri": truststore,
        "mtls_truststore_version": str(ctx.get("mtls_truststore_version") or ""),
        "client_cert_subject": str(ctx.get("client_cert_subject") or TRADINGVIEW_CERT_SUBJECT),
    }


def _retention(ctx: Mapping[str, Any]) -> int:
    days = _int(ctx, "log_retention_days", 1, 3653)
    if days not in RETENTION_DAYS:
        raise ConfigError(f"context 'log_retention_days' must be one of {RETENTION_DAYS}, got {days}")
    return days


ENVIRONMENTS = ("dev", "staging", "prod")
DEPLOY_CONFIG_NAMES = (
    "canary_10_percent_5_minutes",
    "canary_10_percent_10_minutes",
    "linear_10_percent_every_1_minute",
    "all_at_once",
)


def _deploy_context(ctx: Mapping[str, Any]) -> dict[str, str]:
    environment = str(ctx.get("environment") or "")
    if environment and environment not in ENVIRONMENTS:
        raise ConfigError(f"context 'environment' must be one of {', '.join(ENVIRONMENTS)}, got {environment!r}")
    deploy_config = str(ctx.get("deploy_config") or "canary_10_percent_5_minutes")
    if deploy_config not in DEPLOY_CONFIG_NAMES:
        raise ConfigError(
            f"context 'deploy_config' must be one of {', '.join(DEPLOY_CONFIG_NAMES)}, got {deploy_config!r}"
        )
    return {"environment": environment, "deploy_config": deploy_config}


def known_regions() -> set[str]:
    """Regions in the CDK's own fact base (offline: no API call)."""
    return {r.name for r in RegionInfo.regions}


@dataclass(frozen=True)
class InfraConfig:
    region: str
    prefix: str
    nat_gateways: int
    multi_az: bool
    db_instance_class: str
    redis_node_type: str
    lambda_arm64: bool
    execute_reserved_concurrency: int
    api_rate_limit: int
    api_burst_limit: int
    webhook_max_body_bytes: int
    feed_desired_count: int
    optimise_schedule: str
    log_retention_days: int
    alarm_email: str
    require_built_layers: bool
    functions_dir: str
    # issue 18: what the weekly optimisation fans out over (statemachines/optimise.asl.json)
    optimise_symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")
    optimise_timeframes: tuple[str, ...] = ("1h",)
    optimise_folds: int = 4
    # issue 16: ingress — see _ingress_context
    tradingview_ip_allowlist: tuple[str, ...] = TRADINGVIEW_IPS
    waf_rate_limit_per_minute: int = 100
    custom_domain_name: str = ""
    custom_domain_certificate_arn: str = ""
    mtls_truststore_uri: str = ""
    mtls_truststore_version: str = ""
    client_cert_subject: str = TRADINGVIEW_CERT_SUBJECT
    # issue 20: which environment this is (cdk.json "environments"; "" = the base context) and how
    # CodeDeploy shifts each function's `live` alias (deploy.py DEPLOY_CONFIGS)
    environment: str = ""
    deploy_config: str = "canary_10_percent_5_minutes"

    @classmethod
    def from_context(cls, ctx: Mapping[str, Any]) -> InfraConfig:
        region = _str(ctx, "region")
        if region not in known_regions():
            raise ConfigError(f"context 'region' is not a known AWS region: {region!r}")
        arch = _str(ctx, "lambda_architecture")
        if arch not in {"arm64", "x86_64"}:
            raise ConfigError(f"context 'lambda_architecture' must be 'arm64' or 'x86_64', got {arch!r}")
        email = ctx.get("alarm_email") or ""
        if email and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", str(email)):
            raise ConfigError(f"context 'alarm_email' is not an e-mail address: {email!r}")
        cfg = cls(
            region=region,
            prefix=_str(ctx, "prefix", re.compile(r"^[a-z][a-z0-9-]{1,20}$"), "lower-case, 2-21 chars"),
            # 0 is refused: execute, vote and notify call exchanges, LLM APIs and Telegram on the
            # internet, and the feed holds exchange WebSockets; AWS APIs go through VPC endpoints.
            nat_gateways=_int(ctx, "nat_gateways", 1, 2),
            multi_az=_bool(ctx, "multi_az"),
            db_instance_class=_str(ctx, "db_instance_class", _DB_CLASS, "e.g. t4g.small, without 'db.'"),
            redis_node_type=_str(ctx, "redis_node_type", _CACHE_NODE, "e.g. cache.t4g.micro"),
            lambda_arm64=arch == "arm64",
            execute_reserved_concurrency=_int(ctx, "execute_reserved_concurrency", 1, 100),
            api_rate_limit=_int(ctx, "api_rate_limit", 1, 10_000),
            api_burst_limit=_int(ctx, "api_burst_limit", 1, 5_000),
            # API Gateway's own limit is 10 MB and cannot be lowered; the webhook refuses anything
            # larger than this with 413 before parsing (TradingView alerts are well under 1 KB).
            webhook_max_body_bytes=_int(ctx, "webhook_max_body_bytes", 256, 1_048_576),
            feed_desired_count=_int(ctx, "feed_desired_count", 0, 2),
            optimise_schedule=_str(ctx, "optimise_schedule", _SCHEDULE, "cron(...) or rate(...)"),
            log_retention_days=_retention(ctx),
            alarm_email=str(email),
            require_built_layers=_bool(ctx, "require_built_layers"),
            functions_dir=_str(ctx, "functions_dir"),
            optimise_symbols=_words(ctx, "optimise_symbols", ("BTCUSDT", "ETHUSDT"), _TICKER, "e.g. BTCUSDT,ETHUSDT"),
            optimise_timeframes=_words(ctx, "optimise_timeframes", ("1h",), _TIMEFRAME, "e.g. 1h,4h"),
            optimise_folds=_int(ctx, "optimise_folds", 1, 20) if "optimise_folds" in ctx else 4,
            **_ingress_context(ctx),
            **_deploy_context(ctx),
        )
        if cfg.api_burst_limit < cfg.api_rate_limit:
            raise ConfigError("context 'api_burst_limit' must be >= 'api_rate_limit'")
        return cfg
