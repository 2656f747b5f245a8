"""Prism's persistent state: accounts, keys, wallets, the ledger and request logs.

Every operation is a plain function `op(db, ...)` that runs as one transaction on the
database it is given; the gateway runs them on the single `Writer` thread with
`await writer.call(op, ...)`. Schema and conventions: store.models; connection,
migrations and the exception tree: store.db; money: store.ledger.
"""
from store.db import (SCHEMA_VERSION, AccountNotFound, ConstraintViolation,
                      DuplicateRequest, HoldNotFound, InsufficientFunds,
                      SchemaTooNew, StoreError, StoreUnavailable, WouldGoNegative,
                      WriterClosed, migrate, open_database, read_tx, schema_version,
                      write_tx)
from store.keys import (KEY_PREFIX, create_account, create_account_with_key,
                        create_key, find_key_by_hash, get_account, get_key, hash_key,
                        list_keys, load_active_keys, revoke_key, touch_keys,
                        update_key)
from store.ledger import (SettleResult, adjust, check_invariants, expire_all_open,
                          expire_holds, get_wallet, hold_for_request, ledger_rows,
                          open_holds, reserve, settle, top_up, void)
from store.logs import insert_request_log, request_logs
from store.models import (MODELS, Account, ApiKey, Hold, LedgerEntry, RequestLog,
                          SchemaVersion, Wallet)
from store.writer import Writer

__all__ = [
    "SCHEMA_VERSION", "MODELS", "KEY_PREFIX",
    "Account", "ApiKey", "Hold", "LedgerEntry", "RequestLog", "SchemaVersion", "Wallet",
    "StoreError", "StoreUnavailable", "ConstraintViolation", "SchemaTooNew",
    "WriterClosed", "AccountNotFound", "HoldNotFound", "DuplicateRequest",
    "InsufficientFunds", "WouldGoNegative",
    "open_database", "migrate", "schema_version", "read_tx", "write_tx",
    "create_account", "create_key", "create_account_with_key", "get_account",
    "get_key", "list_keys", "update_key", "revoke_key", "find_key_by_hash",
    "load_active_keys", "touch_keys", "hash_key",
    "top_up", "adjust", "reserve", "settle", "void", "expire_holds",
    "expire_all_open", "SettleResult", "get_wallet", "ledger_rows", "open_holds",
    "hold_for_request", "check_invariants",
    "insert_request_log", "request_logs",
    "Writer",
]
