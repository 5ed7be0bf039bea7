"""Lambda ``migrate``: the CloudFormation custom resource that brings the schema to alembic's head
before any function version takes traffic (cdk/tradingbot_infra/deploy.py orders every ``live``
alias after it).

Events come from the CDK custom-resource provider framework (``RequestType`` Create / Update /
Delete; the answer's ``PhysicalResourceId`` and ``Data`` go back to CloudFormation). Create and
Update upgrade to head (alembic is idempotent: already at head changes nothing); the resource's
``MigrationsHash`` property changes with the migration files, so a deploy that adds one runs it.
Delete changes nothing: deleting the stack never drops data. A failed upgrade raises, the provider
reports FAILED, CloudFormation rolls the deploy back and no alias moves; each migration runs in one
transaction (PostgreSQL DDL is transactional), so a failure leaves the previous schema.
The way back (a downgrade) is deliberate, never automatic: docs/migrations.md.
"""

from __future__ import annotations

from typing import Any

from tradingbot.adapters.persistence.config import database_url
from tradingbot.adapters.persistence.migrations import current_revision, migrate
from tradingbot.entrypoints.lambdas.edge import lambda_edge, logger
from tradingbot.pipeline.runtime import get_runtime

PHYSICAL_ID = "tradingbot-schema"


@lambda_edge("migrate", correlation_id_path="RequestId")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = str(event.get("RequestType", ""))
    if request == "Delete":
        logger.info("stack delete: schema left as it is", extra={"event": "migrate_skipped"})
        return {"PhysicalResourceId": event.get("PhysicalResourceId") or PHYSICAL_ID}
    if request not in ("Create", "Update"):
        raise ValueError(f"RequestType: {request!r} is not Create, Update or Delete")
    rt = get_runtime()
    url = rt.database_url or database_url(rt.persistence)
    before = current_revision(url)
    migrate(url)
    after = current_revision(url)
    logger.info("schema at head", extra={"event": "migrated", "from": before or "base", "to": after})
    return {"PhysicalResourceId": PHYSICAL_ID, "Data": {"From": before or "base", "Revision": after or "base"}}
