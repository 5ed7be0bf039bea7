"""JSON documents of an optimisation fan-out (its plan and one result per fold) under a folder or
an ``s3://bucket/prefix``: the Distributed Map's workers write them, the aggregate step reads them
all and stores the run in PostgreSQL in one transaction.

A local file is written to a temporary name and renamed; an S3 PUT is atomic: a reader sees a
whole document or none. botocore's errors are translated here, once: a missing document is
``None``, a network failure :class:`ResultsUnavailable` (transient: the state machine retries)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from tradingbot.adapters.s3_root import S3Root
from tradingbot.errors import DependencyUnavailable, PermanentError


class ResultsError(PermanentError, ValueError):
    """A document that cannot be written or is not JSON."""


class ResultsUnavailable(DependencyUnavailable):
    """S3 did not answer."""


class ResultStore(S3Root):
    root_error = ResultsError

    def location(self, key: str) -> str:
        return f"{self.root}/{key}"

    def bucket_key(self, key: str) -> tuple[str, str]:
        """The S3 bucket and object key of ``key`` (what a Distributed Map's ItemReader is given)."""
        return self._split(key)

    def put(self, key: str, doc: Any) -> str:
        """Write ``doc`` as JSON under ``key``; returns its location."""
        body = json.dumps(doc, allow_nan=False, separators=(",", ":")).encode()
        if not self.is_s3:
            path = Path(self.location(key))
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(body)
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            return str(path)
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, name = self.bucket_key(key)
        try:
            self._client().put_object(Bucket=bucket, Key=name, Body=body, ContentType="application/json")
        except ClientError as exc:
            raise ResultsError(f"{self.location(key)}: cannot write: {exc}") from None
        except BotoCoreError as exc:
            raise ResultsUnavailable(f"{self.location(key)}: cannot write: {exc}") from exc
        return self.location(key)

    def get(self, key: str) -> Any | None:
        """The document under ``key``, or ``None`` when there is none."""
        if not self.is_s3:
            path = Path(self.location(key))
            if not path.exists():
                return None
            text = path.read_bytes()
        else:
            from botocore.exceptions import BotoCoreError, ClientError

            bucket, name = self.bucket_key(key)
            try:
                text = self._client().get_object(Bucket=bucket, Key=name)["Body"].read()
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return None
                raise ResultsError(f"{self.location(key)}: cannot read: {exc}") from None
            except BotoCoreError as exc:
                raise ResultsUnavailable(f"{self.location(key)}: cannot read: {exc}") from exc
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ResultsError(f"{self.location(key)}: not JSON: {exc}") from None


def results_from_settings() -> ResultStore:
    from tradingbot.settings import OptimiseSection

    return ResultStore(OptimiseSection().results_root())
