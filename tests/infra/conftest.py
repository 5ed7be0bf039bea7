"""Synthesises the CDK app once per test session; every infra test asserts on that one assembly.

Offline by construction: no AWS account, no credentials, no context lookups (the stacks are
account-agnostic), no Docker (image assets are only staged and hashed at synth time).
``INFRA_FUNCTIONS_DIR`` points the app at another functions/ tree (development only).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "cdk"))
# jsii warns on every start that Node 20 is end-of-life; the warning is not ours to act on here
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

try:
    from aws_cdk.assertions import Template
except ImportError:  # the cdk extra is not installed: pip install -e '.[cdk]'
    collect_ignore_glob = ["test_*.py"]

STACKS = ("network", "data", "compute", "monitoring")


@dataclass
class Synth:
    outdir: Path
    built: Any  # tradingbot_infra.app.TradingBotApp
    templates: dict[str, dict[str, Any]]  # raw CloudFormation JSON per stack key
    messages: dict[str, list[tuple[str, str, str]]]  # (level, construct path, text) per stack key
    seconds: float
    _assertions: dict[str, Template] = field(default_factory=dict)

    def template(self, stack: str) -> Template:
        if stack not in self._assertions:
            self._assertions[stack] = Template.from_json(self.templates[stack])
        return self._assertions[stack]

    def resources(self, stack: str, cfn_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.templates[stack]["Resources"].items() if v["Type"] == cfn_type}


def infra_context(**overrides: Any) -> dict[str, Any]:
    ctx: dict[str, Any] = {"require_built_layers": False}  # CI does not build layers (no internet)
    if os.environ.get("INFRA_FUNCTIONS_DIR"):
        ctx["functions_dir"] = os.environ["INFRA_FUNCTIONS_DIR"]
    ctx.update(overrides)
    return ctx


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    from tradingbot_infra.app import build_app

    outdir = tmp_path_factory.mktemp("cdk.out")
    started = time.perf_counter()
    built = build_app(infra_context(), outdir=str(outdir))
    assembly = built.app.synth()
    seconds = time.perf_counter() - started
    keys = dict(zip([s.stack_name for s in built.stacks], STACKS, strict=True))
    templates, messages = {}, {}
    for artifact in assembly.stacks:
        key = keys[artifact.stack_name]
        templates[key] = artifact.template
        messages[key] = [(str(m.level), m.id, str(m.entry.data)) for m in artifact.messages]
    print(f"\nCDK synthesis: {seconds:.1f} s")
    return Synth(outdir, built, templates, messages, seconds)


def live_alias(synth: Synth, function_id: str) -> str:
    """The logical id of ``function_id``'s ``live`` alias: what callers invoke (issue 20, deploy.py)."""
    (alias,) = [
        k for k, a in synth.resources("compute", "AWS::Lambda::Alias").items()
        if a["Properties"]["FunctionName"] == {"Ref": function_id}
    ]  # fmt: skip
    return alias
