"""A store's root: a local folder or an ``s3://bucket/prefix``, and the S3 client it uses (one per
store, created on first use). Shared by the candle history (adapters/history.py) and the
optimisation results (adapters/optimise_results.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class S3Root:
    #: raised by :meth:`_split` for an ``s3://`` root without a bucket (each store names its own error)
    root_error: type[Exception] = ValueError

    def __init__(self, root: str | Path, *, s3_client: Any = None) -> None:
        self.root = str(root).rstrip("/")
        self._s3 = s3_client

    @property
    def is_s3(self) -> bool:
        return self.root.startswith("s3://")

    def _split(self, relpath: str) -> tuple[str, str]:
        """The S3 bucket and object key of ``relpath`` under the root."""
        bucket, _, prefix = self.root.removeprefix("s3://").partition("/")
        if not bucket:
            raise self.root_error(f"{self.root}: no bucket in the URI")
        prefix = prefix.strip("/")
        return bucket, f"{prefix}/{relpath}" if prefix else relpath

    def _client(self) -> Any:
        if self._s3 is None:
            import boto3  # only when S3 is used
            from botocore.config import Config

            self._s3 = boto3.client(
                "s3", config=Config(connect_timeout=3, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"})
            )
        return self._s3
