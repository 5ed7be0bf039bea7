"""Repository paths the app reads (it is run from anywhere: cdk CLI, pytest, python3 cdk/app.py)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CDK_DIR = REPO_ROOT / "cdk"
DOCKER_DIR = CDK_DIR / "docker"
LAYERS_DIR = REPO_ROOT / "layers"
SHARED_PACKAGE = REPO_ROOT / "shared" / "tradingbot"
STATE_MACHINES_DIR = REPO_ROOT / "statemachines"
STATE_MACHINE_ASL = STATE_MACHINES_DIR / "trading_pipeline.asl.json"  # the trading pipeline
OPTIMISE_ASL = STATE_MACHINES_DIR / "optimise.asl.json"  # scheduled parameter optimisation
ASL_MANIFEST = STATE_MACHINES_DIR / "substitutions.json"  # placeholder -> function, per definition
CDK_JSON = REPO_ROOT / "cdk.json"

# Docker build context is the repo root; only what an image needs is staged into cdk.out
# (never .venv, .git, .data, cdk.out: the asset hash would change with every local run and
# the staging copy would be gigabytes). Docker ignore syntax: exclude all, then re-include.
DOCKER_CONTEXT_EXCLUDE = [
    "*",
    "!pyproject.toml",
    "!README.md",
    "!shared",
    "!functions",
    "!cdk/docker",
    "**/__pycache__",
    "**/*.pyc",
    "**/*.egg-info",
    "**/*.nbi",
    "**/*.nbc",
]
