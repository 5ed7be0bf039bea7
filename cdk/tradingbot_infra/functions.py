"""The Lambda functions: one table that says how each is packaged, and the zip bundle builder.

Packaging rule (Lambda limits: 250 MB unzipped for function + layers, 10 GB for an image):
- zip + layers where the dependency closure fits (measured by tests/infra/test_artifacts.py);
- a container image where it cannot: strategies and backtest need pandas + pandas-ta + numba
  (+ llvmlite), about 260 MB unzipped with numpy before the handler's own code.
The same bundle builder is used by the app and by the size test, so the test measures what ships.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .paths import SHARED_PACKAGE


@dataclass(frozen=True)
class FunctionSpec:
    name: str  # folder under functions/, and the logical id stem
    description: str
    image: bool = False  # container image (cdk/docker/<name>/Dockerfile) instead of zip + layers
    layers: tuple[str, ...] = ()  # folders under layers/
    memory_mb: int = 512
    timeout_s: int = 30
    # AWS Lambda reserved concurrency: set only where it protects something downstream
    reserved_concurrency: bool = False
    needs_state_machine: bool = False  # may start executions (webhook)
    secrets: tuple[str, ...] = ()  # keys of DataStack.secrets this function reads
    environment: dict[str, str] = field(default_factory=dict)
    # a `live` alias shifted by CodeDeploy (deploy.py); False only for the deploy step itself
    alias: bool = True


# Memory and timeouts follow the state machine's TimeoutSeconds (a Lambda timeout larger than
# the state's would only keep a dead invocation billed).
FUNCTIONS: tuple[FunctionSpec, ...] = (
    FunctionSpec(
        "webhook",
        "TradingView webhook: auth, validate, dedupe, StartExecution",
        layers=("common",),
        memory_mb=512,
        timeout_s=10,
        needs_state_machine=True,
        secrets=("database", "redis"),
    ),
    FunctionSpec(
        "predict",
        "LSTM direction forecast (ONNX Runtime)",
        layers=("common", "ml"),
        memory_mb=1024,
        timeout_s=30,
        secrets=("database", "redis"),
    ),
    FunctionSpec(
        "vote",
        "one AI voter per invocation (openai | anthropic | llama)",
        layers=("common", "ai"),
        memory_mb=512,
        timeout_s=20,
        secrets=("database", "redis", "openai", "anthropic"),
    ),
    FunctionSpec(
        "strategies",
        "six pandas-ta strategies on recent candles",
        image=True,
        memory_mb=2048,
        timeout_s=60,
        secrets=("database", "redis"),
    ),
    FunctionSpec(
        "validate",
        "rules and risk limits",
        layers=("common",),
        memory_mb=512,
        timeout_s=15,
        secrets=("database", "redis"),
    ),
    FunctionSpec(
        "execute",
        "places the order (ccxt) or paper-trades it",
        layers=("common", "exchange"),
        memory_mb=1024,
        # the order service's worst case (RetryPolicy.worst_case_s: 40 s venue budget + 10 s local
        # I/O) with room; tests/unit/test_execute_budget.py holds the two together
        timeout_s=60,
        reserved_concurrency=True,
        secrets=("database", "redis", "kek", "binance", "okx"),
    ),
    FunctionSpec(
        "notify",
        "Telegram / SNS notifications, CloudWatch alarm messages",
        layers=("common",),
        memory_mb=256,
        timeout_s=15,
        secrets=("database", "telegram"),
    ),
    FunctionSpec(
        "record_outcome",
        "stores a failed or rejected execution with its reason",
        layers=("common",),
        memory_mb=256,
        timeout_s=15,
        secrets=("database",),
    ),
    # issue 15: every minute, reconcile every enabled account (pipeline/reconcile.py scheduled_pass); one
    # pass holds a Redis lease (TTL 150 s > this timeout), so a slow pass and the next minute's never overlap
    FunctionSpec(
        "reconcile",
        "every minute: reconciles orders, positions and protective orders with the venues (issue 15)",
        layers=("common", "exchange"),
        memory_mb=1024,
        timeout_s=120,
        secrets=("database", "redis", "kek", "binance", "okx"),
    ),
    FunctionSpec(
        "sweeper",
        "every minute: re-drives accepted alerts with no decision (issue 16)",
        layers=("common",),
        memory_mb=256,
        timeout_s=60,
        needs_state_machine=True,  # StartExecution by the same name + DescribeExecution
        # redis: it also copies the ingress refusal tallies into ingress_refusals (pipeline.ingress.flush_refusals)
        secrets=("database", "redis"),
    ),
    # issue 17: the operator's cockpit (closing a position and /reconcile reach the venue: exchange layer + keys)
    FunctionSpec(
        "operator_api",
        "operator API (/api, Cognito) and the dashboard page (/dashboard)",
        layers=("common", "exchange"),
        memory_mb=512,
        timeout_s=29,  # API Gateway's integration timeout
        secrets=("database", "redis", "kek", "binance", "okx"),
    ),
    FunctionSpec(
        "telegram_webhook",
        "Telegram commands (secret-token webhook), daily summary, stops/targets hit",
        layers=("common", "exchange"),
        memory_mb=512,
        timeout_s=29,
        secrets=("database", "redis", "kek", "binance", "okx", "telegram"),
    ),
    FunctionSpec(
        "backtest",
        "optimisation worker: one fold, or one strategy, per invocation",
        image=True,
        memory_mb=3008,
        timeout_s=900,
        secrets=("database",),
    ),
    # issue 20: alembic to head, as a CloudFormation custom resource that every `live` alias waits for
    # (deploy.py); the provider framework allows a handler up to 15 minutes, DDL rarely needs one
    FunctionSpec(
        "migrate",
        "deploy step: migrates the schema to alembic head before traffic shifts (issue 20)",
        layers=("common", "migrate"),
        memory_mb=512,
        timeout_s=300,
        secrets=("database",),
        alias=False,
    ),
)

FUNCTIONS_BY_NAME = {f.name: f for f in FUNCTIONS}

_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc", "*.egg-info")


class MissingHandlerError(FileNotFoundError):
    pass


def handler_path(functions_dir: Path, name: str) -> Path:
    return functions_dir / name / "handler.py"


def build_zip_bundle(functions_dir: Path, name: str, dest: Path) -> Path:
    """Stage functions/<name>/*.py at the bundle root and the ``tradingbot`` package beside it.

    Lambda's handler is then ``handler.handler`` and ``import tradingbot`` works from /var/task;
    third-party dependencies come from the function's layers. Rebuilt from scratch on every synth
    so a deleted module never lingers in the artifact.
    """
    src = functions_dir / name
    if not handler_path(functions_dir, name).is_file():
        raise MissingHandlerError(
            f"{handler_path(functions_dir, name)} not found: every Lambda needs functions/{name}/handler.py "
            "defining handler(event, context)"
        )
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for item in sorted(src.iterdir()):
        if item.name in {"__pycache__", "Dockerfile", "requirements.txt"}:
            continue
        if item.is_dir():
            shutil.copytree(item, dest / item.name, ignore=_IGNORE)
        else:
            shutil.copy2(item, dest / item.name)
    shutil.copytree(SHARED_PACKAGE, dest / "tradingbot", ignore=_IGNORE)
    return dest
