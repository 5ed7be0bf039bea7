"""Model artifact: ``model.onnx`` beside ``metadata.json``, in a folder named by the version.

The metadata carries everything inference needs besides the graph (feature set, window, scaler,
target scale, input/output names), where the model came from (training span, architecture,
framework versions), what it scored (metrics) and the graph's sha256. Loading verifies the digest
before a session is built: a truncated upload or a swapped file fails closed instead of predicting.

Sources: a local folder, or ``s3://bucket/prefix`` (boto3 is imported inside the S3 loader only,
so local use and the tests never need it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import MISSING, asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from tradingbot.errors import PermanentError

MODEL_FILE = "model.onnx"
METADATA_FILE = "metadata.json"
DEFAULT_NAME = "lstm-btcusdt-1h"
ARTIFACTS_PACKAGE_DIR = "artifacts"


class ArtifactError(PermanentError, ValueError):
    """An artifact that cannot be trusted: missing file, malformed metadata, digest mismatch."""


class ArtifactIntegrityError(ArtifactError):
    pass


@dataclass(frozen=True)
class ModelMetadata:
    name: str
    version: str
    created_at: str  # ISO-8601 UTC
    feature_set: str
    features: list[str]
    window: int
    min_candles: int
    interval: str  # bar interval the model was trained on, e.g. "1h"
    scaler: dict[str, list[float]]
    target: dict[str, Any]  # {"kind": "next_log_return", "scale": float}: network output x scale = return
    input_name: str
    output_name: str
    training_span: dict[str, Any]
    architecture: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    frameworks: dict[str, str] = field(default_factory=dict)
    # TradingView tickers of the symbol family the model was trained on (e.g. ["BTCUSDT"]); the
    # predict stage runs it on no other symbol, and on no other bar interval than ``interval``
    symbols: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelMetadata:
        known = set(cls.__dataclass_fields__)
        required = [
            k for k, f in cls.__dataclass_fields__.items() if f.default is MISSING and f.default_factory is MISSING
        ]
        missing = [k for k in required if k not in data]
        if missing:
            raise ArtifactError(f"metadata lacks {', '.join(sorted(missing))}")
        try:
            meta = cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise ArtifactError(f"metadata is malformed: {exc}") from None
        if not isinstance(meta.window, int) or meta.window <= 0:
            raise ArtifactError(f"metadata window must be a positive integer, got {meta.window!r}")
        return meta


@dataclass(frozen=True)
class ModelArtifact:
    metadata: ModelMetadata
    onnx_bytes: bytes
    source: str

    @property
    def version(self) -> str:
        return self.metadata.version


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def utc_now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_version() -> str:
    """Sortable, fits model_versions.version (32 chars)."""
    return dt.datetime.now(dt.UTC).strftime("v%Y%m%d-%H%M%S")


def verify(metadata: ModelMetadata, onnx_bytes: bytes, source: str) -> ModelArtifact:
    digest = sha256_hex(onnx_bytes)
    if not metadata.sha256 or digest != metadata.sha256:
        raise ArtifactIntegrityError(
            f"{source}: model.onnx sha256 {digest[:12]}... does not match metadata "
            f"{(metadata.sha256 or '<missing>')[:12]}...; refusing to load it"
        )
    return ModelArtifact(metadata, onnx_bytes, source)


def write_artifact(directory: Path, onnx_bytes: bytes, metadata: ModelMetadata) -> Path:
    """Write ``model.onnx`` + ``metadata.json`` (sha256 filled in) into ``directory``, atomically:
    both files land in a temporary sibling that is renamed into place, so a reader never sees one
    file without the other."""
    directory = Path(directory)
    if directory.exists():
        raise ArtifactError(f"{directory} already exists; versions are immutable, pick a new version")
    directory.parent.mkdir(parents=True, exist_ok=True)
    meta = ModelMetadata.from_dict({**metadata.to_dict(), "sha256": sha256_hex(onnx_bytes)})
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    tmp.chmod(0o755)  # mkdtemp makes it owner-only; an artifact is meant to be read by others
    try:
        (tmp / MODEL_FILE).write_bytes(onnx_bytes)
        (tmp / METADATA_FILE).write_text(json.dumps(meta.to_dict(), indent=2, sort_keys=False) + "\n")
        os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def load_artifact(uri: str | Path) -> ModelArtifact:
    """Load and verify an artifact from a local folder or ``s3://bucket/prefix``."""
    text = str(uri)
    if text.startswith("s3://"):
        return _load_s3(text)
    return _load_local(Path(text))


def _load_local(directory: Path) -> ModelArtifact:
    if directory.is_file() and directory.name in (MODEL_FILE, METADATA_FILE):
        directory = directory.parent
    meta_path, model_path = directory / METADATA_FILE, directory / MODEL_FILE
    for p in (meta_path, model_path):
        if not p.is_file():
            raise ArtifactError(f"{p}: not found")
    return verify(_parse_metadata(meta_path.read_bytes(), str(meta_path)), model_path.read_bytes(), str(directory))


def _load_s3(uri: str) -> ModelArtifact:
    import boto3  # only here: the domain stays free of AWS SDKs unless S3 is actually used
    from botocore.config import Config

    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise ArtifactError(f"{uri}: no bucket in the URI")
    prefix = prefix.strip("/")
    # a cold start must not hang on S3: bounded connect/read time, a few idempotent retries
    client = boto3.client(
        "s3", config=Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 3, "mode": "standard"})
    )

    def get(name: str) -> bytes:
        key = f"{prefix}/{name}" if prefix else name
        try:
            body: bytes = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as exc:  # botocore's message names the bucket/key and the reason
            raise ArtifactError(f"s3://{bucket}/{key}: cannot read: {exc}") from exc
        return body

    meta = _parse_metadata(get(METADATA_FILE), f"{uri}/{METADATA_FILE}")
    return verify(meta, get(MODEL_FILE), uri)


def _parse_metadata(raw: bytes, source: str) -> ModelMetadata:
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ArtifactError(f"{source}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ArtifactError(f"{source}: expected a JSON object")
    try:
        return ModelMetadata.from_dict(data)
    except ArtifactError as exc:
        raise ArtifactError(f"{source}: {exc}") from None


def bundled_artifacts_dir() -> Path:
    """Where the committed model(s) live inside the package."""
    return Path(str(resources.files("tradingbot") / ARTIFACTS_PACKAGE_DIR))


def list_local(root: Path | None = None) -> list[ModelMetadata]:
    """Metadata of every artifact folder under ``root`` (default: the bundled ones), oldest first.
    Unreadable folders are skipped here; loading one still fails loudly."""
    base = root or bundled_artifacts_dir()
    found: list[ModelMetadata] = []
    if not base.is_dir():
        return found
    for meta_path in sorted(base.glob(f"*/{METADATA_FILE}")):
        try:
            found.append(_parse_metadata(meta_path.read_bytes(), str(meta_path)))
        except ArtifactError:
            continue
    return sorted(found, key=lambda m: (m.created_at, m.version))


def latest_bundled() -> Path | None:
    metas = list_local()
    return bundled_artifacts_dir() / metas[-1].version if metas else None
