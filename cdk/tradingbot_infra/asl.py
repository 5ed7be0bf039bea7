"""The state machine definitions' placeholders, from the one manifest the local runner reads too.

``statemachines/substitutions.json`` lists, per ``.asl.json``, each ``${placeholder}`` and what it
names (``{"function": "<name in FUNCTIONS>"}``). CDK builds DefinitionSubstitutions from it; the
local runner (``tradingbot.entrypoints.local.runner``) builds local ARNs from the same entries.
The app does not import the ``tradingbot`` package (that would load its dependencies into every
synthesis), so the few lines that parse the file exist on both sides.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from .config import ConfigError
from .paths import ASL_MANIFEST

PLACEHOLDER = re.compile(r"\$\{(\w+)\}")  # Step Functions' DefinitionSubstitutions syntax


@cache
def _manifest(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text())["definitions"])


def substitutions(definition: Path, manifest: Path = ASL_MANIFEST) -> dict[str, str]:
    """placeholder -> function name for one definition file (by file name)."""
    entries = _manifest(manifest).get(definition.name)
    if entries is None:
        raise ConfigError(f"{manifest.name} has no entry for {definition.name}")
    out = {}
    for placeholder, target in entries.items():
        if set(target) != {"function"}:
            raise ConfigError(f"{manifest.name}: {definition.name} ${{{placeholder}}} names {target}, not a function")
        out[placeholder] = str(target["function"])
    return out


def check_asl_placeholders(path: Path, manifest: Path = ASL_MANIFEST) -> None:
    """The definition's ${...} placeholders and its manifest entry must match exactly: a missing
    one deploys a state machine whose Task resource is the literal text '${...}'."""
    if not path.is_file():
        raise ConfigError(f"state machine definition not found: {path}")
    known = substitutions(path, manifest)
    found = set(PLACEHOLDER.findall(path.read_text()))
    unknown, unused = found - known.keys(), known.keys() - found
    if unknown:
        raise ConfigError(f"{path.name}: placeholders with no function: {sorted(unknown)}")
    if unused:
        raise ConfigError(f"{path.name}: substitutions the definition never uses: {sorted(unused)}")


def definition_substitutions(path: Path, function_arns: Mapping[str, str]) -> dict[str, str]:
    """DefinitionSubstitutions for ``path``: each placeholder -> the ARN of the function it names."""
    check_asl_placeholders(path)
    return {placeholder: function_arns[name] for placeholder, name in substitutions(path).items()}
