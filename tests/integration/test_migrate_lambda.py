"""The deploy's migration step (issue 20): the ``migrate`` Lambda as CloudFormation's custom-resource
provider calls it, against a real, empty PostgreSQL database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.script import ScriptDirectory

from tradingbot.adapters.persistence.migrations import alembic_config, current_revision, downgrade
from tradingbot.entrypoints.lambdas.migrate import PHYSICAL_ID, handler
from tradingbot.pipeline.runtime import Runtime, set_runtime
from tradingbot.settings import Settings


@pytest.fixture
def migrate_runtime(fresh_database_url: str) -> Iterator[str]:
    set_runtime(Runtime(config=Settings(), database_url=fresh_database_url))
    yield fresh_database_url
    set_runtime(None)


def _head() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _event(request: str, **extra: str) -> dict[str, object]:
    return {"RequestType": request, "RequestId": "r-1", "ResourceProperties": {"MigrationsHash": "x"}, **extra}


def test_create_and_update_bring_the_schema_to_head(migrate_runtime: str) -> None:
    assert current_revision(migrate_runtime) is None
    created = handler(_event("Create"), None)
    assert created["PhysicalResourceId"] == PHYSICAL_ID
    assert created["Data"] == {"From": "base", "Revision": _head()}
    assert current_revision(migrate_runtime) == _head()
    # a deploy whose migrations hash changed after the database fell behind: upgraded from where it is
    downgrade(migrate_runtime, "0003")
    updated = handler(_event("Update", PhysicalResourceId=PHYSICAL_ID), None)
    assert updated["Data"] == {"From": "0003", "Revision": _head()}
    # already at head: nothing to do, same answer
    again = handler(_event("Update", PhysicalResourceId=PHYSICAL_ID), None)
    assert again["Data"] == {"From": _head(), "Revision": _head()}


def test_stack_delete_leaves_the_schema(migrate_runtime: str) -> None:
    handler(_event("Create"), None)
    answer = handler(_event("Delete", PhysicalResourceId=PHYSICAL_ID), None)
    assert answer == {"PhysicalResourceId": PHYSICAL_ID}
    assert current_revision(migrate_runtime) == _head()


def test_an_unknown_request_type_fails_the_deploy(migrate_runtime: str) -> None:
    with pytest.raises(ValueError, match="RequestType: 'Rollback'"):
        handler(_event("Rollback"), None)
    assert current_revision(migrate_runtime) is None
