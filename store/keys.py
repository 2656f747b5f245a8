"""Accounts and API keys: creation, lookup by hash, renaming, revocation.

Only the SHA-256 of a key is stored; the plaintext exists once, in the return value
of the call that made it. These are admin-path operations, so they use peewee's
query builder; the per-request path authenticates from `load_active_keys`, warmed
into memory by the gateway.
"""
from __future__ import annotations

import hashlib
import json
import secrets
import time

import peewee as pw

from store.cluster import post_event
from store.db import AccountNotFound, read_tx, write_tx
from store.ledger import check_micros, post_topup
from store.models import Account, ApiKey, Wallet, new_id
from store.orgs import DEFAULT_ORG

KEY_PREFIX = "sk-prism-"
DISPLAY_PREFIX_CHARS = 12


def hash_key(plaintext: str) -> str:
    """The stored form of a key: hex SHA-256 of its UTF-8 text."""
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def _insert_account(db, name: str, plan: str | None, default_mode: str | None,
                    now: float, org_id: str | None = None) -> Account:
    account = Account(id=new_id("acct_"), name=name, created_at=now, plan=plan,
                      default_mode=default_mode, org_id=org_id or DEFAULT_ORG)
    Account.insert(**account.__data__).execute(db)
    Wallet.insert(account=account.id, balance_micros=0, held_micros=0,
                  updated_at=now).execute(db)
    return account


def _insert_key(db, account_id: str, name: str, now: float) -> tuple[ApiKey, str]:
    # token_urlsafe(32) draws 32 bytes from the OS CSPRNG: 256 bits, unguessable.
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(id=new_id("key_"), account=account_id, name=name,
                 key_hash=hash_key(plaintext), prefix=plaintext[:DISPLAY_PREFIX_CHARS],
                 created_at=now, revoked_at=None, last_used_at=None)
    try:
        ApiKey.insert(**key.__data__).execute(db)
    except pw.IntegrityError:
        # The only foreign key here is the account; a hash collision is not a case.
        raise AccountNotFound(account_id) from None
    return key, plaintext


def create_account(db, name: str, *, plan: str | None = None,
                   default_mode: str | None = None, now: float | None = None) -> Account:
    """A new account with an empty wallet."""
    with write_tx(db):
        return _insert_account(db, name, plan, default_mode,
                               time.time() if now is None else now)


def create_key(db, account_id: str, name: str, *,
               now: float | None = None) -> tuple[ApiKey, str]:
    """A new key for an existing account; returns the row and the only plaintext copy."""
    with write_tx(db):
        return _insert_key(db, account_id, name, time.time() if now is None else now)


def create_account_with_key(db, name: str, credits_micros: int = 0,
                            plan: str | None = None, *, org_id: str | None = None,
                            now: float | None = None) -> tuple[Account, ApiKey, str]:
    """Account, wallet, key and opening top-up in one transaction: all or nothing.
    The account joins `org_id` (the default org when None)."""
    check_micros(credits_micros, "opening credits", minimum=0)
    now = time.time() if now is None else now
    with write_tx(db):
        account = _insert_account(db, name, plan, None, now, org_id)
        key, plaintext = _insert_key(db, account.id, name, now)
        if credits_micros:
            post_topup(db, account.id, credits_micros, "opening credits", now)
    return account, key, plaintext


def get_account(db, account_id: str) -> Account | None:
    with read_tx(db):
        return Account.select().where(Account.id == account_id).first(db)


def get_key(db, key_id: str) -> ApiKey | None:
    with read_tx(db):
        return ApiKey.select().where(ApiKey.id == key_id).first(db)


def list_keys(db, account_id: str | None = None) -> list[ApiKey]:
    """Every key, revoked ones included, oldest first."""
    query = ApiKey.select().order_by(ApiKey.created_at, ApiKey.id)
    if account_id is not None:
        query = query.where(ApiKey.account == account_id)
    with read_tx(db):
        return list(query.execute(db))


_SETTINGS = ("expires_at", "allowed_models", "rpm", "tpm", "budget_micros", "metadata")


def update_key(db, key_id: str, *, name: str | None = None, **settings) -> ApiKey | None:
    """Rename a key and/or change its settings (a value of None clears one; the lists
    and metadata are given as Python values and stored as JSON); None if there is no
    such key."""
    unknown = settings.keys() - set(_SETTINGS)
    if unknown:
        raise TypeError(f"unknown key settings: {sorted(unknown)}")
    values = {k: (json.dumps(v) if k in ("allowed_models", "metadata") and v is not None
                  else v) for k, v in settings.items()}
    if name is not None:
        values["name"] = name
    with write_tx(db):
        if values:
            ApiKey.update(**values).where(ApiKey.id == key_id).execute(db)
            if settings:
                post_event(db, "key.changed", {"key_id": key_id})
        return ApiKey.select().where(ApiKey.id == key_id).first(db)


def revoke_key(db, key_id: str, *, now: float | None = None) -> bool:
    """True if this call revoked the key; False if it is unknown or already revoked.
    Every gateway process sharing the store hears of it (store.cluster's feed)."""
    now = time.time() if now is None else now
    with write_tx(db):
        changed = (ApiKey.update(revoked_at=now)
                   .where((ApiKey.id == key_id) & ApiKey.revoked_at.is_null())
                   .execute(db))
        if changed == 1:
            post_event(db, "key.revoked", {"key_id": key_id}, now=now)
    return changed == 1


def find_key_by_hash(db, key_hash: str, *,
                     include_revoked: bool = False) -> ApiKey | None:
    """The key with this hash. Revoked keys are left out unless asked for, so an
    authenticating caller cannot forget to check."""
    query = ApiKey.select().where(ApiKey.key_hash == key_hash)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_null())
    with read_tx(db):
        return query.first(db)


def load_active_keys(db) -> list[tuple[str, str, str, str]]:
    """(key_hash, key_id, account_id, name) of every unrevoked key, for a warm cache."""
    query = (ApiKey.select(ApiKey.key_hash, ApiKey.id, ApiKey.account, ApiKey.name)
             .where(ApiKey.revoked_at.is_null()).tuples())
    with read_tx(db):
        return list(query.execute(db))


def touch_keys(db, last_used: dict[str, float]) -> int:
    """Record last-use times for many keys in one write; the gateway batches these
    rather than spending a write per request. Returns how many keys were updated."""
    if not last_used:
        return 0
    changed = 0
    with write_tx(db):
        for key_id, when in last_used.items():
            changed += (ApiKey.update(last_used_at=when)
                        .where((ApiKey.id == key_id)
                               & (ApiKey.last_used_at.is_null()
                                  | (ApiKey.last_used_at < when)))
                        .execute(db))
    return changed
