"""Exchange keys at rest: AES-256-GCM envelope encryption, masking, and key rotation.

Envelope: every secret gets its own random 256-bit data key (DEK); the data is sealed with the DEK,
and the DEK is sealed ("wrapped") with the key-encryption key (KEK). Only the KEK lives outside the
database: in settings locally (``TRADINGBOT_KEK`` or a generated ``.data/kek``), in Secrets Manager
on AWS. Rotating the KEK re-wraps 48-byte data keys; the ciphertexts themselves are not touched.

Blob layout (all fixed sizes, so a truncated blob is detected before any decryption)::

    b"TBE1" | kek_id (8) | dek_nonce (12) | wrapped_dek (32 + 16 tag) | data_nonce (12) | data + tag (16)

* ``kek_id`` is HMAC-SHA256(KEK, label)[:8]: it names the key without revealing it, so a blob
  under an unknown KEK fails with "written under KEK 1a2b..., you have 3c4d..." rather than garbage.
* The DEK is wrapped with the header (magic + kek_id) as associated data; the data is sealed with a
  caller-supplied ``context`` (e.g. ``b"api_credentials:account=42"``) as associated data, so a
  blob copied onto another account's row does not decrypt. The data's associated data leaves out
  the kek_id on purpose: a rotation then rewrites only the header and the wrapped DEK.

Secrets in memory are :class:`Secret` objects whose ``repr``/``str``/``format`` are masked, so a log
line or an exception that includes one shows ``****f00d`` and nothing more.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tradingbot.errors import PermanentError

MAGIC = b"TBE1"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
KEK_ID_BYTES = 8
_HEADER = len(MAGIC) + KEK_ID_BYTES
_WRAPPED = NONCE_BYTES + KEY_BYTES + TAG_BYTES
_MIN_BLOB = _HEADER + _WRAPPED + NONCE_BYTES + TAG_BYTES
_KEK_ID_LABEL = b"tradingbot key-encryption key id v1"


class CryptoError(PermanentError):
    """Base class; messages never contain key material or plaintext."""


class InvalidKeyEncryptionKeyError(CryptoError):
    """A configured KEK is not base64 of exactly 32 bytes."""


class WrongKeyEncryptionKeyError(CryptoError):
    """The blob was written under a KEK this provider does not have (or the KEK does not open it)."""


class CorruptCiphertextError(CryptoError):
    """The blob is truncated, tampered with, or belongs to another context."""


# ------------------------------------------------------------------ masking and secrets


def mask(value: str | None, visible: int = 4) -> str:
    """``****abcd``: the last ``visible`` characters, only when the value is long enough (>= 12) for
    them to be a useful hint and useless to an attacker; short values are fully hidden."""
    if not value:
        return ""
    if visible <= 0 or len(value) < 12:
        return "****"
    return "****" + value[-visible:]


class Secret:
    """A string that does not show itself: ``repr``, ``str`` and f-strings give the masked form.
    Call :meth:`reveal` at the single place that must send the value (the exchange client)."""

    __slots__ = ("_value", "_visible")

    def __init__(self, value: str, *, visible: int = 4) -> None:
        self._value = value
        self._visible = visible

    def reveal(self) -> str:
        return self._value

    @property
    def masked(self) -> str:
        return mask(self._value, self._visible)

    def __repr__(self) -> str:
        return f"Secret({self.masked!r})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return format(repr(self), spec)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(hashlib.sha256(self._value.encode()).digest())


@dataclass(frozen=True, repr=False)
class ExchangeCredentials:
    """What ``keys set`` stores for an account. OKX also needs a passphrase."""

    api_key: Secret
    api_secret: Secret
    passphrase: Secret | None = None

    def __repr__(self) -> str:
        return (
            f"ExchangeCredentials(api_key={self.api_key!r}, api_secret={Secret(self.api_secret.reveal(), visible=0)!r})"
        )

    @property
    def hint(self) -> str:
        return self.api_key.masked

    def to_bytes(self) -> bytes:
        doc = {"api_key": self.api_key.reveal(), "api_secret": self.api_secret.reveal()}
        if self.passphrase is not None:
            doc["passphrase"] = self.passphrase.reveal()
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> ExchangeCredentials:
        doc: dict[str, str] = json.loads(raw)
        passphrase = doc.get("passphrase")
        return cls(
            api_key=Secret(doc["api_key"]),
            api_secret=Secret(doc["api_secret"], visible=0),
            passphrase=Secret(passphrase, visible=0) if passphrase is not None else None,
        )


# ------------------------------------------------------------------ key-encryption keys


@dataclass(frozen=True, repr=False)
class Kek:
    key: bytes

    def __post_init__(self) -> None:
        if len(self.key) != KEY_BYTES:
            raise InvalidKeyEncryptionKeyError(f"a key-encryption key must be {KEY_BYTES} bytes, got {len(self.key)}")

    @property
    def id_bytes(self) -> bytes:
        return hmac.new(self.key, _KEK_ID_LABEL, hashlib.sha256).digest()[:KEK_ID_BYTES]

    @property
    def id(self) -> str:
        return self.id_bytes.hex()

    def __repr__(self) -> str:
        return f"Kek(id={self.id})"

    @classmethod
    def from_base64(cls, text: str) -> Kek:
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidKeyEncryptionKeyError("the key-encryption key is not valid base64") from exc
        return cls(raw)

    @classmethod
    def generate(cls) -> Kek:
        return cls(secrets.token_bytes(KEY_BYTES))

    def to_base64(self) -> str:
        return base64.b64encode(self.key).decode()


class KeyProvider(Protocol):
    """Where KEKs come from. ``current`` encrypts; ``find`` opens blobs written under older keys."""

    def current(self) -> Kek: ...

    def find(self, kek_id: str) -> Kek | None: ...


class KeyRing:
    """A current KEK plus older ones kept readable during a rotation (locally: from settings)."""

    def __init__(self, current: Kek, previous: Sequence[Kek] = ()) -> None:
        self._current = current
        self._by_id = {k.id: k for k in (*previous, current)}

    def current(self) -> Kek:
        return self._current

    def find(self, kek_id: str) -> Kek | None:
        return self._by_id.get(kek_id)

    def __repr__(self) -> str:
        return f"KeyRing(current={self._current.id}, known={sorted(self._by_id)})"

    @classmethod
    def from_base64(cls, current: str, previous: Iterable[str] = ()) -> KeyRing:
        return cls(Kek.from_base64(current), [Kek.from_base64(p) for p in previous if p.strip()])


class RotatingProvider:
    """During a rotation: encrypt under ``new``, and still open what ``old`` can open."""

    def __init__(self, new: Kek, old: KeyProvider) -> None:
        self._new = new
        self._old = old

    def current(self) -> Kek:
        return self._new

    def find(self, kek_id: str) -> Kek | None:
        return self._new if kek_id == self._new.id else self._old.find(kek_id)


class SecretsManagerKeyProvider:
    """KEK on AWS: the secret's ``AWSCURRENT`` version encrypts, ``AWSPREVIOUS`` stays readable, so
    ``put-secret-value`` followed by ``tradingbot keys rotate`` is a complete rotation.

    Read through Powertools' Parameters utility like every other secret (adapters/aws.py;
    https://docs.powertools.aws.dev/lambda/python/latest/utilities/parameters/), with its default
    provider, or one around ``client`` when given. Each stage is fetched once per provider."""

    def __init__(self, secret_id: str, client: Any = None) -> None:
        self._secret_id = secret_id
        self._client = client
        self._provider: Any = None
        self._cache: dict[str, Kek | None] = {}

    def _fetch(self, stage: str) -> str:
        from aws_lambda_powertools.utilities import parameters  # AWS adapter only; loads boto3

        from tradingbot.adapters.aws import SECRET_MAX_AGE_S

        if self._provider is None:
            client = self._client
            self._provider = parameters.SecretsProvider(boto3_client=client) if client is not None else None
        get = self._provider.get if self._provider is not None else parameters.get_secret
        # Powertools keys its cache by secret name (and transform) only, not by VersionStage
        # (parameters/base.py _build_cache_key; the same bug in the TypeScript port:
        # https://github.com/aws-powertools/powertools-lambda-typescript/issues/5622), so the
        # previous version is read past the cache and not stored (force_fetch, max_age=0): it can
        # never be served in place of the current key.
        if stage == "AWSCURRENT":
            return str(get(self._secret_id, max_age=SECRET_MAX_AGE_S, VersionStage=stage))
        return str(get(self._secret_id, max_age=0, force_fetch=True, VersionStage=stage))

    def _get(self, stage: str) -> Kek | None:
        if stage not in self._cache:
            try:
                value: str | None = self._fetch(stage)
            except Exception as exc:
                if not _not_found(exc):
                    raise
                if stage == "AWSCURRENT":
                    raise WrongKeyEncryptionKeyError(f"secret {self._secret_id!r} has no current KEK") from None
                value = None  # no AWSPREVIOUS yet: the secret was never rotated
            self._cache[stage] = Kek.from_base64(value) if value else None
        return self._cache[stage]

    def current(self) -> Kek:
        kek = self._get("AWSCURRENT")
        assert kek is not None  # _get raises for a missing AWSCURRENT
        return kek

    def find(self, kek_id: str) -> Kek | None:
        for stage in ("AWSCURRENT", "AWSPREVIOUS"):
            kek = self._get(stage)
            if kek is not None and kek.id == kek_id:
                return kek
        return None


def _not_found(exc: BaseException) -> bool:
    """Secrets Manager's ResourceNotFoundException (no such secret, or no version with that stage),
    which Powertools re-raises as GetParameterError with the ClientError as its context."""
    cause = exc.__cause__ or exc.__context__
    response = getattr(cause, "response", None) or getattr(exc, "response", None)
    return isinstance(response, dict) and response.get("Error", {}).get("Code") == "ResourceNotFoundException"


def local_key_file_provider(data_dir: Path) -> KeyRing:
    """The local default: ``data_dir/kek`` (created once, mode 0600) plus any ``kek.*`` files left
    by a rotation (``kek.previous``, or ``kek.new`` if a rotation stopped before renaming it)."""
    path = data_dir / "kek"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        write_key_file(path, Kek.generate())
    current = Kek.from_base64(path.read_text())
    others = [Kek.from_base64(p.read_text()) for p in sorted(data_dir.glob("kek.*"))]
    return KeyRing(current, others)


def write_key_file(path: Path, kek: Kek) -> None:
    """Write a KEK readable by the owner only; O_EXCL so two processes never both create one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(kek.to_base64() + "\n")
    os.replace(tmp, path)


# ------------------------------------------------------------------ envelope cipher


class EnvelopeCipher:
    def __init__(self, provider: KeyProvider) -> None:
        self.provider = provider

    def encrypt(self, plaintext: bytes, context: bytes) -> bytes:
        kek = self.provider.current()
        header = MAGIC + kek.id_bytes
        dek = AESGCM.generate_key(bit_length=256)
        return header + _wrap(kek, dek, header) + _seal(dek, plaintext, MAGIC + context)

    def decrypt(self, blob: bytes, context: bytes) -> bytes:
        header, wrapped, sealed = _split(blob)
        dek = _unwrap(self._kek_for(header), wrapped, header)
        nonce, data = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
        try:
            return AESGCM(dek).decrypt(nonce, data, MAGIC + context)
        except InvalidTag:
            raise CorruptCiphertextError(
                "encrypted data failed authentication: tampered with, or stored for another record"
            ) from None

    def rewrap(self, blob: bytes) -> bytes:
        """The same secret with its data key wrapped under the current KEK (no-op if it already is)."""
        header, wrapped, sealed = _split(blob)
        current = self.provider.current()
        if header[len(MAGIC) :] == current.id_bytes:
            return blob
        dek = _unwrap(self._kek_for(header), wrapped, header)
        new_header = MAGIC + current.id_bytes
        return new_header + _wrap(current, dek, new_header) + sealed

    def _kek_for(self, header: bytes) -> Kek:
        kek_id = header[len(MAGIC) :].hex()
        kek = self.provider.find(kek_id)
        if kek is None:
            raise WrongKeyEncryptionKeyError(
                f"this secret was encrypted under key-encryption key {kek_id}, which is not configured "
                f"(current key is {self.provider.current().id}); set TRADINGBOT_KEK to the key it was "
                "written with, or keep the old key in TRADINGBOT_KEK_PREVIOUS during a rotation"
            )
        return kek


def kek_id_of(blob: bytes) -> str:
    header, _, _ = _split(blob)
    return header[len(MAGIC) :].hex()


def _split(blob: bytes) -> tuple[bytes, bytes, bytes]:
    if len(blob) < _MIN_BLOB or not blob.startswith(MAGIC):
        raise CorruptCiphertextError("not a tradingbot envelope (wrong format or truncated)")
    return blob[:_HEADER], blob[_HEADER : _HEADER + _WRAPPED], blob[_HEADER + _WRAPPED :]


def _wrap(kek: Kek, dek: bytes, header: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(kek.key).encrypt(nonce, dek, header)


def _unwrap(kek: Kek, wrapped: bytes, header: bytes) -> bytes:
    try:
        return AESGCM(kek.key).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], header)
    except InvalidTag:
        raise WrongKeyEncryptionKeyError(
            f"key-encryption key {kek.id} does not open this secret's data key (wrong key or tampered data)"
        ) from None


def _seal(dek: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(dek).encrypt(nonce, plaintext, aad)


# ------------------------------------------------------------------ rotation


class Rewrappable(Protocol):
    """Anything with an envelope and the id of the KEK that wrapped it (an ApiCredential row)."""

    envelope: bytes
    kek_id: str


def reencrypt_all(items: Iterable[Rewrappable], cipher: EnvelopeCipher) -> tuple[int, int]:
    """Re-wrap every item's data key under ``cipher``'s current KEK, in place.

    Returns (re-wrapped, already current). Items already under the current KEK are skipped, so a
    rotation that was interrupted can simply be run again. The caller commits (one transaction:
    all rows move to the new KEK, or none do)."""
    current = cipher.provider.current().id
    done = skipped = 0
    for item in items:
        if item.kek_id == current and kek_id_of(item.envelope) == current:
            skipped += 1
            continue
        item.envelope = cipher.rewrap(item.envelope)
        item.kek_id = current
        done += 1
    return done, skipped


def key_provider(*, kek: str | None, previous: str | None, secret_id: str | None, data_dir: Path) -> KeyProvider:
    """Pick the provider from settings: Secrets Manager on AWS, else TRADINGBOT_KEK, else the
    generated local key file (the default that works on a fresh checkout)."""
    if secret_id:
        return SecretsManagerKeyProvider(secret_id)
    if kek:
        return KeyRing.from_base64(kek, (previous or "").split(","))
    return local_key_file_provider(data_dir)
