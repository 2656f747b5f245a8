"""Secrets held at rest (provider credentials given as values): sealed with a key
from the environment, never written anywhere in plain text.

PRISM_SECRET_KEY holds either a Fernet key (`python -c "from cryptography.fernet
import Fernet; print(Fernet.generate_key().decode())"`) or any string of at least 32
characters, from which a key is derived. The ciphertext is authenticated (AES-CBC +
HMAC-SHA256, cryptography's Fernet), so a tampered or foreign value fails to open
instead of yielding garbage. A credential is shown only by its `fingerprint`.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import os


from gateway.config import ConfigError

SECRET_KEY_ENV = "PRISM_SECRET_KEY"
_MIN_PASSPHRASE = 32


class SealingUnavailable(Exception):
    """No usable key in the environment."""


class SealBroken(Exception):
    """A sealed value that this key cannot open (another key, or tampered with)."""


def _fernet_key(raw: str) -> bytes:
    try:
        if len(base64.urlsafe_b64decode(raw.encode())) == 32:
            return raw.encode()
    except (binascii.Error, ValueError):
        pass
    if len(raw) < _MIN_PASSPHRASE:
        raise SealingUnavailable(f"{SECRET_KEY_ENV} must be a Fernet key or at least "
                                 f"{_MIN_PASSPHRASE} characters")
    return base64.urlsafe_b64encode(hashlib.sha256(b"prism-seal:" + raw.encode()).digest())


class Sealer:
    def __init__(self, key: str) -> None:
        from cryptography.fernet import Fernet   # loaded only where a key is set
        self._fernet = Fernet(_fernet_key(key))

    @classmethod
    def from_env(cls, environ=os.environ) -> "Sealer | None":
        """The environment's sealer, None when the key is unset; a key that is set but
        unusable stops start-up with a message (as a bad prism.toml does)."""
        raw = environ.get(SECRET_KEY_ENV, "")
        if not raw:
            return None
        try:
            return cls(raw)
        except SealingUnavailable as exc:
            raise ConfigError([str(exc)], "environment") from None

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode("ascii")

    def open(self, sealed: str) -> str:
        from cryptography.fernet import InvalidToken
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode()
        except (InvalidToken, ValueError):
            raise SealBroken("the sealed value does not open with this "
                             f"{SECRET_KEY_ENV}") from None


def fingerprint(secret: str) -> str:
    """A short, safe-to-show name for a credential (not enough to recover it)."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:10]
