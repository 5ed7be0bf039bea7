#!/usr/bin/env python3
"""Entry point for the cdk CLI (cdk.json: "app": "python3 cdk/app.py")."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tradingbot_infra.app import build_app
from tradingbot_infra.config import ConfigError
from tradingbot_infra.functions import MissingHandlerError

if __name__ == "__main__":
    try:
        build_app().app.synth()
    except (ConfigError, MissingHandlerError) as exc:
        sys.exit(f"synthesis stopped: {exc}")
