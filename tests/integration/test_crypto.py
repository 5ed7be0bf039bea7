"""Envelope encryption of exchange keys: round trip, wrong KEK, tampering, rotation, masking."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import boto3  # type: ignore[import-untyped]
import pytest
from moto import mock_aws
from sqlalchemy import Engine, select

from tradingbot.adapters import crypto
from tradingbot.adapters.crypto import (
    CorruptCiphertextError,
    EnvelopeCipher,
    ExchangeCredentials,
    InvalidKeyEncryptionKeyError,
    Kek,
    KeyRing,
    RotatingProvider,
    Secret,
    SecretsManagerKeyProvider,
    WrongKeyEncryptionKeyError,
    mask,
)
from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.adapters.persistence.models import ApiCredential

API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
API_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
CTX = b"api_credentials:account=1"


def _creds(passphrase: str | None = None) -> ExchangeCredentials:
    return ExchangeCredentials(
        api_key=Secret(API_KEY),
        api_secret=Secret(API_SECRET, visible=0),
        passphrase=Secret(passphrase, visible=0) if passphrase else None,
    )


def test_round_trip_and_fresh_nonces() -> None:
    cipher = EnvelopeCipher(KeyRing(Kek.generate()))
    a, b = cipher.encrypt(b"payload", CTX), cipher.encrypt(b"payload", CTX)
    assert a != b  # a new data key and nonce every time: equal secrets do not look equal at rest
    assert b"payload" not in a
    assert cipher.decrypt(a, CTX) == cipher.decrypt(b, CTX) == b"payload"


def test_wrong_kek_is_a_clear_error_not_garbage() -> None:
    right, wrong = Kek.generate(), Kek.generate()
    blob = EnvelopeCipher(KeyRing(right)).encrypt(b"secret", CTX)
    with pytest.raises(WrongKeyEncryptionKeyError) as info:
        EnvelopeCipher(KeyRing(wrong)).decrypt(blob, CTX)
    message = str(info.value)
    assert right.id in message and wrong.id in message
    assert right.to_base64() not in message and wrong.to_base64() not in message


def test_kek_that_matches_the_id_but_not_the_key_is_refused() -> None:
    """Forge the header so the id points at our key: unwrapping must still fail, loudly."""
    victim, attacker = Kek.generate(), Kek.generate()
    blob = EnvelopeCipher(KeyRing(victim)).encrypt(b"secret", CTX)
    forged = crypto.MAGIC + attacker.id_bytes + blob[len(crypto.MAGIC) + crypto.KEK_ID_BYTES :]
    with pytest.raises(WrongKeyEncryptionKeyError, match="does not open"):
        EnvelopeCipher(KeyRing(attacker)).decrypt(forged, CTX)


@pytest.mark.parametrize("position", [-1, -20, 30, 70])
def test_tampered_bytes_are_detected(position: int) -> None:
    cipher = EnvelopeCipher(KeyRing(Kek.generate()))
    blob = bytearray(cipher.encrypt(b"secret value", CTX))
    blob[position] ^= 0x01
    with pytest.raises((CorruptCiphertextError, WrongKeyEncryptionKeyError)):
        cipher.decrypt(bytes(blob), CTX)


def test_blob_moved_to_another_record_does_not_decrypt() -> None:
    cipher = EnvelopeCipher(KeyRing(Kek.generate()))
    blob = cipher.encrypt(b"secret", b"api_credentials:account=1")
    with pytest.raises(CorruptCiphertextError, match="another record"):
        cipher.decrypt(blob, b"api_credentials:account=2")


def test_truncated_or_foreign_blob() -> None:
    cipher = EnvelopeCipher(KeyRing(Kek.generate()))
    blob = cipher.encrypt(b"x", CTX)
    for bad in (blob[:40], b"", b"XXXX" + blob[4:]):
        with pytest.raises(CorruptCiphertextError, match="not a tradingbot envelope"):
            cipher.decrypt(bad, CTX)


def test_invalid_kek_settings() -> None:
    with pytest.raises(InvalidKeyEncryptionKeyError, match="base64"):
        Kek.from_base64("not base64 !!")
    with pytest.raises(InvalidKeyEncryptionKeyError, match="32 bytes, got 16"):
        Kek.from_base64("AAAAAAAAAAAAAAAAAAAAAA==")


def test_rewrap_changes_only_the_key_wrapping() -> None:
    old, new = Kek.generate(), Kek.generate()
    blob = EnvelopeCipher(KeyRing(old)).encrypt(b"secret", CTX)
    rotated = EnvelopeCipher(RotatingProvider(new, KeyRing(old))).rewrap(blob)
    assert crypto.kek_id_of(rotated) == new.id
    sealed = crypto.NONCE_BYTES + len(b"secret") + crypto.TAG_BYTES
    assert rotated[-sealed:] == blob[-sealed:]  # the data ciphertext is untouched; only the DEK was re-wrapped
    assert EnvelopeCipher(KeyRing(new)).decrypt(rotated, CTX) == b"secret"
    with pytest.raises(WrongKeyEncryptionKeyError):
        EnvelopeCipher(KeyRing(old)).decrypt(rotated, CTX)


def test_credentials_encrypted_in_the_database_and_rotated(db: Engine) -> None:
    old, new = Kek.generate(), Kek.generate()
    old_cipher = EnvelopeCipher(KeyRing(old))
    with session_scope(db) as s:
        ids = []
        for name, exchange, pp in (("bn", "binanceusdm", None), ("ok", "okx", "pass-phrase-123")):
            account, _ = repo.create_account(s, name=name, exchange=exchange, testnet=True)
            repo.store_credentials(s, account, _creds(pp), old_cipher)
            ids.append(account.id)
    with session_scope(db) as s:
        rows = s.scalars(select(ApiCredential)).all()
        assert {r.kek_id for r in rows} == {old.id}
        for r in rows:  # nothing readable at rest
            assert API_KEY.encode() not in r.envelope and API_SECRET.encode() not in r.envelope
            assert r.api_key_hint == "****" + API_KEY[-4:]

    rotating = EnvelopeCipher(RotatingProvider(new, KeyRing(old)))
    with session_scope(db) as s:
        assert repo.reencrypt_all_credentials(s, rotating) == (2, 0)
    with session_scope(db) as s:
        assert repo.reencrypt_all_credentials(s, rotating) == (0, 2)  # re-running is safe

    new_only, old_only = EnvelopeCipher(KeyRing(new)), EnvelopeCipher(KeyRing(old))
    with session_scope(db) as s:
        okx = repo.get_account(s, "ok")
        loaded = repo.load_credentials(s, okx, new_only)
        assert loaded is not None
        assert loaded.api_secret.reveal() == API_SECRET
        assert loaded.passphrase is not None and loaded.passphrase.reveal() == "pass-phrase-123"
        with pytest.raises(WrongKeyEncryptionKeyError):
            repo.load_credentials(s, okx, old_only)


def test_rotation_failure_leaves_every_row_under_the_old_kek(db: Engine) -> None:
    """A row the new provider cannot open aborts the rotation: all rows stay as they were."""
    k1, k2, k3 = Kek.generate(), Kek.generate(), Kek.generate()
    with session_scope(db) as s:
        a, _ = repo.create_account(s, name="a", exchange="binanceusdm", testnet=True)
        b, _ = repo.create_account(s, name="b", exchange="binanceusdm", testnet=True)
        repo.store_credentials(s, a, _creds(), EnvelopeCipher(KeyRing(k1)))
        repo.store_credentials(s, b, _creds(), EnvelopeCipher(KeyRing(k2)))  # written under another key
    with pytest.raises(WrongKeyEncryptionKeyError), session_scope(db) as s:
        repo.reencrypt_all_credentials(s, EnvelopeCipher(RotatingProvider(k3, KeyRing(k1))))
    with session_scope(db) as s:
        assert sorted(r.kek_id for r in s.scalars(select(ApiCredential))) == sorted([k1.id, k2.id])


def test_secrets_are_masked_in_repr_str_format_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    creds = _creds("okx-pass-phrase")
    caplog.set_level(logging.DEBUG)
    log = logging.getLogger("tradingbot.test")
    log.info("loaded %s", creds)
    log.info("key=%r secret=%s", creds.api_key, creds.api_secret)
    log.info(f"f-string {creds.api_secret} {creds.api_key:>20}")
    try:
        raise ValueError(f"exchange refused {creds}")
    except ValueError:
        log.exception("failed")
    text = caplog.text + repr(creds) + str(creds.passphrase) + repr(KeyRing(Kek.generate()))
    for value in (API_KEY, API_SECRET, "okx-pass-phrase", API_KEY[:8], API_SECRET[-4:]):
        assert value not in text
    assert "****" + API_KEY[-4:] in text  # the hint that lets a person tell keys apart


def test_mask() -> None:
    assert mask("abcdefghijkl1234") == "****1234"
    assert mask("short") == "****"
    assert mask("abcdefghijkl1234", visible=0) == "****"
    assert mask(None) == mask("") == ""


def test_local_key_file_is_private_and_stable(tmp_path: Path) -> None:
    first = crypto.local_key_file_provider(tmp_path)
    second = crypto.local_key_file_provider(tmp_path)
    assert first.current().id == second.current().id
    assert stat.S_IMODE(os.stat(tmp_path / "kek").st_mode) == 0o600


@mock_aws
def test_secrets_manager_provider_current_and_previous(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    client = boto3.client("secretsmanager", region_name="eu-west-1")
    k1, k2 = Kek.generate(), Kek.generate()
    client.create_secret(Name="tradingbot/kek", SecretString=k1.to_base64())
    blob = EnvelopeCipher(SecretsManagerKeyProvider("tradingbot/kek", client)).encrypt(b"s", CTX)
    assert crypto.kek_id_of(blob) == k1.id

    client.put_secret_value(SecretId="tradingbot/kek", SecretString=k2.to_base64())  # rotation step 1
    provider = SecretsManagerKeyProvider("tradingbot/kek", client)  # a new cold start
    assert provider.current().id == k2.id
    cipher = EnvelopeCipher(provider)
    assert cipher.decrypt(blob, CTX) == b"s"  # AWSPREVIOUS still opens old rows
    rotated = cipher.rewrap(blob)  # rotation step 2 (keys rotate)
    assert crypto.kek_id_of(rotated) == k2.id
    assert EnvelopeCipher(KeyRing(k2)).decrypt(rotated, CTX) == b"s"


@mock_aws
def test_secrets_manager_missing_secret_is_a_clear_error() -> None:
    client = boto3.client("secretsmanager", region_name="eu-west-1")
    with pytest.raises(WrongKeyEncryptionKeyError, match="no current KEK"):
        SecretsManagerKeyProvider("absent", client).current()
