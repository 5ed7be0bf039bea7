"""cdk-nag (AwsSolutions) and cfn-lint on the synthesised templates."""

from __future__ import annotations

import json

import pytest

from .conftest import Synth


def test_no_unsuppressed_nag_errors(synth: Synth) -> None:
    errors = [
        (stack, path, text.split("\n")[0][:160])
        for stack, msgs in synth.messages.items()
        for level, path, text in msgs
        if "ERROR" in level.upper()
    ]
    assert not errors, "\n".join(f"{s} {p}: {t}" for s, p, t in errors)


def test_nag_ran_on_every_stack(synth: Synth) -> None:
    reports = sorted(p.name for p in synth.outdir.glob("AwsSolutions-*-NagReport.csv"))
    assert len(reports) == 4, reports


def test_every_suppression_has_a_reason(synth: Synth) -> None:
    count = 0
    for template in synth.templates.values():
        for resource in template["Resources"].values():
            for s in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
                count += 1
                assert len(s.get("reason", "")) >= 40, s
    assert count > 0
    print(f"\ncdk-nag suppressions (resource-level entries): {count}")


def test_cfn_lint(synth: Synth) -> None:
    api = pytest.importorskip("cfnlint.api")
    from cfnlint.api import ManualArgs

    failures = []
    for stack in synth.templates:
        path = next(synth.outdir.glob(f"*{stack.capitalize()}.template.json"))
        matches = api.lint(path.read_text(), config=ManualArgs(regions=[synth.built.cfg.region]))
        # errors fail the test; W3005 (redundant DependsOn that CDK writes) is informational
        failures += [
            f"{path.name}: {m.rule.id} {m.message} @ {'/'.join(map(str, m.path))}"
            for m in matches
            if m.rule.id.startswith("E")
        ]
    assert not failures, "\n".join(failures)


def test_templates_are_environment_agnostic(synth: Synth) -> None:
    """No account id baked in: the same templates deploy to any account (no lookups at synth)."""
    for template in synth.templates.values():
        assert "123456789012" not in json.dumps(template)
    assert not (synth.outdir / "cdk.context.json").exists()
