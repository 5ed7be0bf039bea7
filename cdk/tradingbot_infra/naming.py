"""Concern constructs and stacks that keep CloudFormation logical ids as they were before them.

Each stack is composed of one construct per concern (functions, webhook API, ...). CDK derives a
resource's logical id from its construct path, so wrapping resources in a construct would rename
every one of them, and CloudFormation replaces a resource whose logical id changes: a new database,
new secrets, a new Redis. A :class:`ConcernStack` therefore leaves the ids of :class:`Concern`
constructs out of the path it names resources by (``Stack.allocateLogicalId`` is CDK's documented
hook for that); the rest of the path, and CDK's naming scheme, are unchanged.

Some names CDK derives from the full construct path itself, out of that hook's reach: the RDS
credentials secret's logical id, an RDS Proxy's name, the ids of security-group rules between two
groups of one concern, API Gateway's invoke permissions, an ECS task family. CDK leaves the id
``Default`` out of every such name (its hidden id), so the one concern per stack that holds those
resources takes :data:`HIDDEN_ID`; where a second concern needs one name kept,
:func:`flat_unique_id` gives it explicitly.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from aws_cdk import CfnElement, Stack
from constructs import Construct

# CDK's makeUniqueId (aws-cdk-lib core/lib/private/uniqueid.ts), which the default
# allocateLogicalId applies to the path below the stack
HIDDEN_ID = "Default"  # left out entirely (also by Names.uniqueId and Names.uniqueResourceName)
_HIDDEN_FROM_HUMAN_ID = "Resource"  # left out of the readable part, kept in the hash
_HASH_LEN = 8
_MAX_HUMAN_LEN = 240
_MAX_ID_LEN = 255
_NON_ALNUM = re.compile(r"[^A-Za-z0-9]")


class Concern(Construct):
    """One concern of a stack; its id names nothing in the template (see module docstring)."""


def make_unique_id(components: Sequence[str]) -> str:
    """The logical id CDK gives the construct path ``components`` (below the stack)."""
    parts = [c for c in components if c != HIDDEN_ID]
    if not parts:
        raise ValueError("cannot name an empty construct path")
    if len(parts) == 1 and len(candidate := _NON_ALNUM.sub("", parts[0])) <= _MAX_ID_LEN:
        return candidate
    digest = hashlib.md5("/".join(parts).encode(), usedforsecurity=False).hexdigest()[:_HASH_LEN].upper()
    human: list[str] = []
    for part in parts:  # CDK's removeDupes: a component ending like the previous one is dropped
        if not human or not human[-1].endswith(part):
            human.append(part)
    readable = "".join(_NON_ALNUM.sub("", p) for p in human if p != _HIDDEN_FROM_HUMAN_ID)
    return readable[:_MAX_HUMAN_LEN] + digest


class ConcernStack(Stack):
    """A stack composed of :class:`Concern` constructs, whose logical ids skip the concerns' ids."""

    def _allocate_logical_id(self, cfn_element: CfnElement) -> str:
        scopes = cfn_element.node.scopes
        start = next(i for i, s in enumerate(scopes) if s.node.path == self.node.path) + 1
        return make_unique_id([s.node.id for s in scopes[start:] if not isinstance(s, Concern)])


def flat_unique_id(scope: Construct, cid: str) -> str:
    """``Names.uniqueId`` of a construct ``cid`` in ``scope``, as if no concern were on its path."""
    ids = [s.node.id for s in scope.node.scopes[1:] if not isinstance(s, Concern)]  # [0] is the app
    return make_unique_id([*ids, cid])


def pascal(name: str) -> str:
    """``record_outcome`` -> ``RecordOutcome``: construct ids from function and layer names."""
    return "".join(part.capitalize() for part in name.split("_"))
