"""Concern constructs leave logical ids as CDK would give them without the concern (a renamed
logical id makes CloudFormation replace the resource: a new database, new secrets)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    "path",
    [
        ["Topic"],  # top level: the id as is
        ["Group", "Topic"],
        ["Group", "Default", "Topic"],  # "Default" is hidden
        ["Api", "ApiDeployment"],  # a component ending like the previous one is dropped from the readable part
        ["x" * 300],  # too long for an id of its own: hashed
    ],
)
def test_concern_stack_ids_equal_cdk_ids(path: list[str]) -> None:
    from aws_cdk import App, Stack
    from aws_cdk import aws_sns as sns
    from constructs import Construct

    from tradingbot_infra.naming import Concern, ConcernStack, make_unique_id

    app = App()
    plain, concerned = Stack(app, "Plain"), ConcernStack(app, "Concerned")
    scope: Construct = plain
    inner: Construct = Concern(concerned, "Outer")
    for part in path[:-1]:
        scope, inner = Construct(scope, part), Construct(inner, part)
    inner = Concern(inner, "Nested")  # concerns at any depth are skipped
    expected = plain.get_logical_id(sns.CfnTopic(scope, path[-1]))
    assert concerned.get_logical_id(sns.CfnTopic(inner, path[-1])) == expected
    assert make_unique_id(path) == expected


def test_hidden_and_flat_names_equal_cdk_names() -> None:
    """What CDK names from the full path (Names.uniqueId: task families, generated secrets) is kept
    under the hidden id, and flat_unique_id gives it for a construct under an ordinary concern."""
    from aws_cdk import App, Names, Stack
    from constructs import Construct

    from tradingbot_infra.naming import HIDDEN_ID, Concern, ConcernStack, flat_unique_id

    plain = Construct(Stack(App(), "Same"), "A")
    expected = Names.unique_id(Construct(plain, "T"))
    stack = ConcernStack(App(), "Same")
    assert Names.unique_id(Construct(Construct(Concern(stack, HIDDEN_ID), "A"), "T")) == expected
    assert flat_unique_id(Construct(Concern(stack, "Visible"), "A"), "T") == expected
