"""Org secrets at rest: one Fernet token (AES-128-CBC + HMAC-SHA256, from the
`cryptography` package, already a dependency through httpx's TLS stack) per org,
keyed from the PRISM_SECRET_KEY environment variable, the one key the gateway keeps
every secret at rest with (rotated provider keys too, gateway.runtime.sealing);
PRISM_ORG_SECRETS_KEY, its earlier name, is still read when it is not set.

The variable may hold a Fernet key or any passphrase (it is stretched with SHA-256).
Without it, an org config that carries credentials is refused (400) rather than
stored in a form anyone reading the database could use.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os


from gateway import errors
from gateway.orgs.settings import OrgSecrets

KEY_ENV = "PRISM_SECRET_KEY"
OLD_KEY_ENV = "PRISM_ORG_SECRETS_KEY"


class SecretBox:
    def __init__(self, key: str | None) -> None:
        self._fernet = None
        if key:
            raw = hashlib.sha256(key.encode("utf-8")).digest()
            from cryptography.fernet import Fernet   # loaded only where a key is set
            self._fernet = Fernet(base64.urlsafe_b64encode(raw))

    @classmethod
    def from_env(cls) -> "SecretBox":
        return cls(os.environ.get(KEY_ENV) or os.environ.get(OLD_KEY_ENV) or None)

    def __repr__(self) -> str:
        return f"SecretBox(configured={self._fernet is not None})"

    def seal(self, secrets: OrgSecrets) -> str | None:
        """The ciphertext to store (None when there is nothing secret)."""
        if not secrets.credentials and not secrets.webhook_secret:
            return None
        if self._fernet is None:
            raise errors.InvalidRequest(
                f"credentials: storing provider credentials or a webhook secret needs "
                f"{KEY_ENV} set in the gateway's environment (they are kept encrypted)",
                field="credentials", code="secrets_key_missing")
        data = json.dumps({"c": secrets.credentials, "w": secrets.webhook_secret})
        return self._fernet.encrypt(data.encode("utf-8")).decode("ascii")

    def open(self, blob: str | None) -> OrgSecrets:
        """The secrets of a stored org; empty when none, or when they cannot be read
        (key missing or changed: the org's requests then use the gateway's own)."""
        if not blob or self._fernet is None:
            return OrgSecrets({}, "")
        from cryptography.fernet import InvalidToken
        try:
            data = json.loads(self._fernet.decrypt(blob.encode("ascii")))
        except (InvalidToken, ValueError):
            return OrgSecrets({}, "")
        return OrgSecrets(dict(data.get("c") or {}), str(data.get("w") or ""))
