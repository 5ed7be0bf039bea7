"""statemachines/substitutions.json is the one table of the definitions' ${placeholders}: CDK builds
DefinitionSubstitutions from it and the local runner builds local ARNs from it. Here: the manifest
and the .asl.json files agree both ways, every placeholder names a deployed function, and the local
runner renders each definition to valid JSON with nothing left to substitute."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tradingbot.entrypoints.local.runner import definition_path, function_arn, render_definition

ROOT = Path(__file__).resolve().parents[2]
STATEMACHINES = ROOT / "statemachines"
MANIFEST = STATEMACHINES / "substitutions.json"
PLACEHOLDER = re.compile(r"\$\{(\w+)\}")  # Step Functions' DefinitionSubstitutions syntax
DEFINITIONS = sorted(p.name for p in STATEMACHINES.glob("*.asl.json"))


def _manifest() -> dict[str, dict[str, dict[str, str]]]:
    return dict(json.loads(MANIFEST.read_text())["definitions"])


def _resources(node: Any) -> set[str]:
    """Every Task state's Resource, at any depth (Parallel branches, Map item processors)."""
    if isinstance(node, dict):
        own = {node["Resource"]} if node.get("Type") == "Task" else set()
        return own.union(*(_resources(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_resources(v) for v in node))
    return set()


def test_both_definitions_are_listed() -> None:
    assert DEFINITIONS == ["optimise.asl.json", "trading_pipeline.asl.json"]
    assert sorted(_manifest()) == DEFINITIONS, "one manifest entry per statemachines/*.asl.json, and no other"


@pytest.mark.parametrize("name", DEFINITIONS)
def test_placeholders_are_the_manifest_entries(name: str) -> None:
    found = set(PLACEHOLDER.findall((STATEMACHINES / name).read_text()))
    listed = set(_manifest()[name])
    assert found - listed == set(), f"{name}: placeholders the manifest does not list"
    assert listed - found == set(), f"{name}: manifest entries the definition never uses"


@pytest.mark.parametrize("name", DEFINITIONS)
def test_every_placeholder_names_a_function(name: str) -> None:
    for placeholder, target in _manifest()[name].items():
        assert set(target) == {"function"}, (placeholder, target)
        assert (ROOT / "functions" / target["function"] / "handler.py").is_file(), (placeholder, target)


@pytest.mark.parametrize("name", DEFINITIONS)
def test_local_runner_renders_valid_json_with_no_placeholder_left(name: str) -> None:
    text = render_definition(definition_path(name))
    assert "${" not in text
    definition = json.loads(text)
    expected = {function_arn(t["function"]) for t in _manifest()[name].values()}
    assert _resources(definition) == expected, "every Task calls a function of the manifest, each one is called"


def test_local_runner_refuses_an_unlisted_placeholder(tmp_path: Path) -> None:
    bad = tmp_path / "optimise.asl.json"
    bad.write_text((STATEMACHINES / "optimise.asl.json").read_text().replace("${BacktestFunctionArn}", "${Other}"))
    with pytest.raises(ValueError, match="unsubstituted placeholder"):
        render_definition(bad)
    unknown = tmp_path / "unknown.asl.json"
    unknown.write_text("{}")
    with pytest.raises(ValueError, match=r"no entry for unknown\.asl\.json"):
        render_definition(unknown)
