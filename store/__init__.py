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
from store.flags import (append_audit, audit_log, audited, load_provider_flags,
                         set_provider_flags)
from store.logs import insert_request_log, request_logs
from store.models import (MODELS, Account, ApiKey, AuditLog, Hold, LedgerEntry,
                          ProviderFlag, RequestLog, SchemaVersion, Wallet)
from store.overview import account_summaries, count_open_holds, open_hold_rows
from store.responses import (SavedResponse, delete_response, get_response,
                             purge_expired_responses, save_response)
from store.models import StoredResponse
from store.writer import Writer
from store.pg import is_postgres

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
    "AuditLog", "ProviderFlag", "append_audit", "audit_log", "audited",
    "load_provider_flags", "set_provider_flags",
    "account_summaries", "count_open_holds", "open_hold_rows",
    "Writer", "is_postgres",
]
__all__ += [
    "StoredResponse", "SavedResponse", "save_response", "get_response", "delete_response",
    "purge_expired_responses",
]

# Plan windows, the account's position, idempotency keys and customer usage (issue 4).
from store.idempotency import (Claim, InProgress, KeyReused, Stored, purge_idempotency)
from store.models import IdempotencyRecord, QuotaEntry, QuotaHold
from store.quota import (Admitted, Closed, Position, QuotaExceeded, WindowUsage,
                         account_position, admit, expire_all_open_quota,
                         expire_quota_holds, is_quota_hold, quota_holds)
from store.usage import request_record, usage_page, usage_rows, usage_summary
from store.sweep import startup_sweep, sweep

__all__ += [
    "QuotaHold", "QuotaEntry", "IdempotencyRecord", "Admitted", "Closed", "Position",
    "QuotaExceeded", "WindowUsage", "account_position", "admit", "expire_quota_holds",
    "expire_all_open_quota", "is_quota_hold", "quota_holds",
    "Claim", "Stored", "KeyReused", "InProgress", "purge_idempotency",
    "usage_rows", "usage_page", "usage_summary", "request_record", "sweep", "startup_sweep",
]

# Session memory for X-Prism-Session (issue 5).
from store.models import Session
from store.sessions import (SessionData, append_turn, compact_session, delete_session,
                            open_session, peek_session, purge_sessions)

__all__ += [
    "Session", "SessionData", "open_session", "peek_session", "append_turn",
    "compact_session", "delete_session", "purge_sessions",
]

# Video jobs for /v1/videos (issue 6).
from store.media import (VideoJob, close_video_hold, finish_video_job, get_video_job,
                         hold_state, insert_video_job, list_video_jobs,
                         unfinished_video_jobs, update_video_job)

__all__ += [
    "VideoJob", "close_video_hold", "finish_video_job", "get_video_job", "hold_state",
    "insert_video_job", "list_video_jobs", "unfinished_video_jobs", "update_video_job",
]

# A2A tasks (issue 15).
from store.a2a import (A2APushConfig, A2ATask, a2a_context_history, delete_a2a_push_config,
                       get_a2a_task, list_a2a_push_configs, list_a2a_tasks, save_a2a_push_config,
                       save_a2a_task)

__all__ += ["A2ATask", "get_a2a_task", "save_a2a_task", "A2APushConfig", "a2a_context_history",
            "save_a2a_push_config", "list_a2a_push_configs", "delete_a2a_push_config",
            "list_a2a_tasks"]
