"""Bad context stops synthesis with a message naming the setting (no stacks are built)."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import infra_context

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _config(**overrides: Any) -> Any:
    from tradingbot_infra.app import default_context
    from tradingbot_infra.config import InfraConfig

    ctx = default_context()
    ctx.update(infra_context(**overrides))
    return InfraConfig.from_context(ctx)


def test_cdk_json_defaults_are_valid() -> None:
    cfg = _config()
    assert cfg.region == "us-east-1"
    assert cfg.multi_az is False and cfg.nat_gateways == 1 and cfg.lambda_arm64


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("region", "us-east-9", "'region' is not a known AWS region"),
        ("region", None, "'region' is missing"),
        ("multi_az", "yes", "'multi_az' must be a boolean"),
        ("multi_az", 2, "'multi_az' must be a boolean"),
        ("nat_gateways", 0, "'nat_gateways' must be an integer in [1, 2]"),
        ("nat_gateways", "two", "'nat_gateways' must be an integer"),
        ("nat_gateways", True, "'nat_gateways' must be an integer"),
        ("db_instance_class", "db.t4g.small", "'db_instance_class' is invalid"),
        ("redis_node_type", "t4g.micro", "'redis_node_type' is invalid"),
        ("lambda_architecture", "arm", "'lambda_architecture' must be"),
        ("log_retention_days", 31, "'log_retention_days' must be one of"),
        ("optimise_schedule", "every sunday", "'optimise_schedule' is invalid"),
        ("alarm_email", "ops", "'alarm_email' is not an e-mail"),
        ("require_built_layers", "maybe", "'require_built_layers' must be a boolean"),
        ("api_burst_limit", 5, "'api_burst_limit' must be >= 'api_rate_limit'"),
    ],
)
def test_bad_context_names_the_setting(key: str, value: Any, message: str) -> None:
    from tradingbot_infra.config import ConfigError

    with pytest.raises(ConfigError) as err:
        _config(**{key: value})
    assert message in str(err.value)


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("False", False), (True, True), ("0", False)])
def test_cli_string_booleans_are_accepted(value: Any, expected: bool) -> None:
    # `cdk deploy -c multi_az=true` passes the string "true"
    assert _config(multi_az=value).multi_az is expected


def test_app_stops_before_building_stacks(tmp_path: Any) -> None:
    from tradingbot_infra.app import build_app
    from tradingbot_infra.config import ConfigError

    with pytest.raises(ConfigError, match="'multi_az'"):
        build_app(infra_context(multi_az="sometimes"), outdir=str(tmp_path))


def test_unbuilt_layers_refused_when_required(tmp_path: Any) -> None:
    """cdk.json requires built layers, so a deploy never ships the requirements.txt placeholder."""
    from tradingbot_infra.app import build_app
    from tradingbot_infra.config import ConfigError
    from tradingbot_infra.paths import LAYERS_DIR

    if all((LAYERS_DIR / n / "build" / "python").is_dir() for n in ("common", "ml", "ai", "exchange")):
        pytest.skip("layers are built here")
    with pytest.raises(ConfigError, match=r"layer '\w+' is not built"):
        build_app(infra_context(require_built_layers=True), outdir=str(tmp_path))


@pytest.mark.parametrize("definition", ["STATE_MACHINE_ASL", "OPTIMISE_ASL"])
def test_asl_placeholders_must_match(tmp_path: Any, definition: str) -> None:
    from tradingbot_infra import paths
    from tradingbot_infra.asl import check_asl_placeholders, substitutions
    from tradingbot_infra.config import ConfigError

    real = getattr(paths, definition)
    check_asl_placeholders(real)  # the real definition
    placeholder = next(iter(substitutions(real)))
    bad = tmp_path / real.name  # the manifest entry is found by file name
    bad.write_text(real.read_text().replace("${" + placeholder + "}", "${NotifyFnArn}"))
    with pytest.raises(ConfigError, match="NotifyFnArn"):
        check_asl_placeholders(bad)
    with pytest.raises(ConfigError, match="not found"):
        check_asl_placeholders(tmp_path / "missing.asl.json")
    unlisted = tmp_path / "unlisted.asl.json"
    unlisted.write_text("{}")
    with pytest.raises(ConfigError, match=r"no entry for unlisted\.asl\.json"):
        check_asl_placeholders(unlisted)


def test_manifest_names_deployed_functions() -> None:
    """Every function a definition's placeholder names is one the app deploys."""
    from tradingbot_infra.asl import substitutions
    from tradingbot_infra.functions import FUNCTIONS_BY_NAME
    from tradingbot_infra.paths import OPTIMISE_ASL, STATE_MACHINE_ASL

    for definition in (STATE_MACHINE_ASL, OPTIMISE_ASL):
        assert set(substitutions(definition).values()) <= FUNCTIONS_BY_NAME.keys(), definition.name
