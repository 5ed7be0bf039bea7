"""Many rows as one statement parameter: a JSON array that PostgreSQL reads with ``json_to_recordset``.

The webhook's group commit writes up to 200 rows per statement (issue 16). As one JSON text the rows
cross as one parameter that :func:`json.dumps` writes in C and PostgreSQL parses in C, and the
statement is the same text for any batch size (compiled once by SQLAlchemy, parsed once by the
server per connection). The alternatives measured worse under ``benchmarks/bench_burst.py`` (yappi,
CPU of the acknowledging process): a multi-row ``VALUES`` list is a new statement per batch size;
text arrays (``unnest``) are escaped by pg8000 in Python a character at a time.

Text survives exactly: PostgreSQL's ``json`` to ``text`` conversion undoes JSON's escapes. The one
value ``json`` cannot carry into ``text`` is U+0000, which PostgreSQL's ``text`` cannot hold either;
the callers already store it as the six characters ``\\u0000`` (pipeline.webhook._storable).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any


def json_rows(rows: Sequence[Mapping[str, Any]]) -> str:
    """``rows`` (each a mapping of column alias to a JSON-representable value) as one JSON array."""
    return json.dumps(rows, ensure_ascii=False, separators=(",", ":"))
