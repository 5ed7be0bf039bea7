"""Each zip Lambda's artifact (handler + tradingbot package + its layers) against Lambda's limits,
and its cold-start imports against what the artifact contains. Offline: layer contents are
resolved from the installed distributions (see cdk/tradingbot_infra/artifacts.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import REPO_ROOT, infra_context

ZIP_FUNCTIONS = ["webhook", "predict", "vote", "validate", "execute", "notify", "record_outcome", "reconcile",
                 "sweeper", "operator_api", "telegram_webhook", "migrate"]  # fmt: skip


def _functions_dir() -> Path:
    from tradingbot_infra.app import default_context

    ctx = default_context()
    ctx.update(infra_context())
    return REPO_ROOT / ctx["functions_dir"]


@pytest.fixture(scope="module")
def layers() -> dict[str, tuple[list[Path], set[str]]]:
    from tradingbot_infra.artifacts import layer_files

    return {name: layer_files(name) for name in ("common", "ml", "ai", "exchange", "migrate")}


@pytest.fixture(scope="module")
def measured_layers(layers: dict[str, tuple[list[Path], set[str]]]) -> dict[str, object]:
    from tradingbot_infra.artifacts import measure

    return {name: measure(files) for name, (files, _) in layers.items()}


def test_zip_functions_match_the_table() -> None:
    from tradingbot_infra.functions import FUNCTIONS

    assert [f.name for f in FUNCTIONS if not f.image] == ZIP_FUNCTIONS


@pytest.mark.parametrize("name", ZIP_FUNCTIONS)
def test_artifact_within_lambda_limits(name: str, tmp_path: Path, measured_layers: dict, capsys) -> None:
    from tradingbot_infra.artifacts import MB, UNZIPPED_LIMIT, ZIPPED_DIRECT_LIMIT, measure
    from tradingbot_infra.functions import FUNCTIONS_BY_NAME, build_zip_bundle

    spec = FUNCTIONS_BY_NAME[name]
    bundle = build_zip_bundle(_functions_dir(), name, tmp_path / name)
    code = measure(p for p in bundle.rglob("*") if p.is_file())
    parts = [code, *(measured_layers[layer] for layer in spec.layers)]
    unzipped = sum(p.unzipped for p in parts)
    with capsys.disabled():
        print(
            f"\n  {name:15} code {code.unzipped / MB:5.1f} MB + layers {spec.layers}: "
            f"{unzipped / MB:6.1f} MB unzipped (limit {UNZIPPED_LIMIT / MB:.0f}); zipped "
            + ", ".join(f"{p.zipped / MB:.1f}" for p in parts)
            + " MB"
        )
    assert unzipped <= UNZIPPED_LIMIT, f"{name}: {unzipped / MB:.1f} MB unzipped with layers"
    for part in parts:
        assert part.zipped <= ZIPPED_DIRECT_LIMIT, f"{name}: a zip of {part.zipped / MB:.1f} MB"


@pytest.mark.parametrize("name", ZIP_FUNCTIONS)
def test_cold_start_imports_are_in_the_artifact(name: str, layers: dict) -> None:
    """Every third-party module the handler imports at module level is shipped (or is boto3 & co.)."""
    from tradingbot_infra.artifacts import RUNTIME_PROVIDED, closure, distributions_for, third_party_imports
    from tradingbot_infra.functions import FUNCTIONS_BY_NAME, handler_path
    from tradingbot_infra.paths import LAYERS_DIR

    spec = FUNCTIONS_BY_NAME[name]
    shipped = set(RUNTIME_PROVIDED)
    for layer in spec.layers:
        shipped |= layers[layer][1]
    # a built layer was resolved by pip for the target platform: its own metadata is the truth,
    # and the venv's dependency versions may differ, so only the imported distribution is checked
    built = any((LAYERS_DIR / layer / "build" / "python").is_dir() for layer in spec.layers)
    missing = {}
    for module, dists in distributions_for(third_party_imports(handler_path(_functions_dir(), name))).items():
        needed = dists if built else closure(dists)
        if not dists & shipped or not needed <= shipped:
            missing[module] = sorted(needed - shipped)
    assert not missing, f"{name} imports modules its layers {spec.layers} do not ship: {missing}"
