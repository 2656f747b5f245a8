"""The store's tables as peewee models: the schema and nothing else.

Conventions every table follows:
- Money is integer micro-USD (1 USD = 1_000_000) in 64-bit integer columns.
- Timestamps are unix seconds as floats (`time.time()`), stored as REAL; sub-second
  precision keeps request logs ordered and hold expiry exact.
- Ids are prefixed random strings ('acct_', 'key_', 'hold_') so a stray id in a log
  says what it is; ledger rows alone count up, because their order is the books'.
- Foreign keys are stored as `<name>_id` columns. Prefer `key.account_id` to
  `key.account`: the latter is a query, on whichever database was opened last
  (see store.db on binding).

The CHECK constraints restate the money rules so that a bug in the code that writes
these rows fails its transaction instead of corrupting a balance.
"""
from __future__ import annotations

import secrets

import peewee as pw

LEDGER_KINDS = ("topup", "hold", "settle", "void", "expire", "adjust")
HOLD_STATES = ("open", "settled", "voided", "expired")


def new_id(prefix: str) -> str:
    """A fresh id such as 'hold_3f9c...': 96 random bits, so never checked for clashes."""
    return prefix + secrets.token_hex(12)


def _one_of(column: str, values: tuple[str, ...]) -> pw.SQL:
    listed = ", ".join(f"'{v}'" for v in values)
    return pw.SQL(f"CHECK ({column} IN ({listed}))")


class _Base(pw.Model):
    pass


class Account(_Base):
    id = pw.CharField(primary_key=True)
    name = pw.CharField()
    created_at = pw.FloatField()
    plan = pw.CharField(null=True)
    default_mode = pw.CharField(null=True)
    # The organization it belongs to (store.orgs); migrate puts older accounts in the
    # default one, so NULL never survives an open.
    org_id = pw.CharField(null=True, index=True)

    class Meta:
        table_name = "account"


class ApiKey(_Base):
    id = pw.CharField(primary_key=True)
    account = pw.ForeignKeyField(Account, backref="keys", on_delete="RESTRICT")
    name = pw.CharField()
    key_hash = pw.CharField(unique=True)   # hex SHA-256 of the plaintext key
    prefix = pw.CharField()                # shown to operators, e.g. 'sk-prism-abc'
    created_at = pw.FloatField()
    revoked_at = pw.FloatField(null=True)
    last_used_at = pw.FloatField(null=True)
    # Per-key settings (PUT /-/keys/{id}); NULL means no restriction. JSON text for
    # the lists and the operator's metadata.
    expires_at = pw.FloatField(null=True)
    allowed_models = pw.TextField(null=True)
    rpm = pw.IntegerField(null=True)
    tpm = pw.IntegerField(null=True)
    budget_micros = pw.BigIntegerField(null=True)    # monthly, store.budgets
    metadata = pw.TextField(null=True)

    class Meta:
        table_name = "api_key"


class Wallet(_Base):
    id = pw.AutoField()
    account = pw.ForeignKeyField(Account, unique=True, backref="wallet",
                                 on_delete="RESTRICT")
    balance_micros = pw.BigIntegerField(default=0)
    held_micros = pw.BigIntegerField(default=0)
    updated_at = pw.FloatField()

    class Meta:
        table_name = "wallet"
        constraints = [pw.SQL("CHECK (held_micros >= 0)"),
                       pw.SQL("CHECK (balance_micros >= held_micros)")]


class Hold(_Base):
    id = pw.CharField(primary_key=True)
    wallet = pw.ForeignKeyField(Wallet, backref="holds", on_delete="RESTRICT")
    request_id = pw.CharField(unique=True)   # one request, one hold, one settlement
    amount_micros = pw.BigIntegerField()
    state = pw.CharField(default="open")
    charged_micros = pw.BigIntegerField(default=0)
    overrun_micros = pw.BigIntegerField(default=0)   # cost above the hold, not charged
    created_at = pw.FloatField()
    expires_at = pw.FloatField()
    closed_at = pw.FloatField(null=True)

    class Meta:
        table_name = "hold"
        constraints = [_one_of("state", HOLD_STATES),
                       pw.SQL("CHECK (amount_micros >= 0)"),
                       pw.SQL("CHECK (charged_micros BETWEEN 0 AND amount_micros)"),
                       pw.SQL("CHECK (overrun_micros >= 0)")]
        # The sweeper's scan: open holds by expiry.
        indexes = ((("state", "expires_at"), False),)


class LedgerEntry(_Base):
    id = pw.AutoField()
    # No index of its own: the (wallet, id) index below serves every lookup by wallet.
    wallet = pw.ForeignKeyField(Wallet, backref="entries", on_delete="RESTRICT",
                                index=False)
    kind = pw.CharField()
    # Signed effect on balance: + topup, - settle charge, +/- adjust, 0 otherwise.
    amount_micros = pw.BigIntegerField()
    hold = pw.ForeignKeyField(Hold, null=True, backref="entries", on_delete="RESTRICT")
    request_id = pw.CharField(null=True)
    reason = pw.TextField(null=True)
    estimated = pw.BooleanField(default=False)
    created_at = pw.FloatField()
    balance_after = pw.BigIntegerField()

    class Meta:
        table_name = "ledger_entry"
        constraints = [_one_of("kind", LEDGER_KINDS)]
        indexes = ((("wallet", "id"), False),)


class RequestLog(_Base):
    request_id = pw.CharField(primary_key=True)
    created_at = pw.FloatField(index=True)
    key_id = pw.CharField(null=True)
    account_id = pw.CharField(null=True, index=True)
    route = pw.CharField()
    dialect = pw.CharField()
    model = pw.CharField(null=True)
    provider = pw.CharField(null=True)
    upstream_model = pw.CharField(null=True)
    status = pw.IntegerField()
    error_type = pw.CharField(null=True)
    latency_ms = pw.FloatField(default=0.0)
    tokens_in = pw.IntegerField(default=0)
    tokens_out = pw.IntegerField(default=0)
    cached_tokens = pw.IntegerField(default=0)
    cost_micros = pw.BigIntegerField(default=0)
    estimated = pw.BooleanField(default=False)
    failover = pw.BooleanField(default=False)
    stream = pw.BooleanField(default=False)
    mode = pw.CharField(null=True)   # eco | balanced | sport, when routing chose by mode
    markup_micros = pw.BigIntegerField(null=True)   # the mode's markup, part of cost_micros

    class Meta:
        table_name = "request_log"
        # Customer usage queries: one account's rows by time.
        indexes = ((("account_id", "created_at"), False),)


class StoredResponse(_Base):
    """A Responses-API response kept for GET /v1/responses/{id} and previous_response_id.

    ``request_json`` is the conversation so far as Responses input items (everything
    before this response's output, without instructions); ``response_json`` is the
    Response object exactly as the client got it. Rows are deleted outright, not
    flagged, so a deleted conversation leaves nothing behind."""
    id = pw.CharField(primary_key=True)         # 'resp_...'
    account_id = pw.CharField()
    created_at = pw.FloatField()
    expires_at = pw.FloatField(index=True)      # the purge's scan
    request_json = pw.TextField()
    response_json = pw.TextField()

    class Meta:
        table_name = "stored_response"


class SchemaVersion(_Base):
    id = pw.IntegerField(primary_key=True, constraints=[pw.SQL("CHECK (id = 1)")])
    version = pw.IntegerField()

    class Meta:
        table_name = "schema_version"


class ProviderFlag(_Base):
    """An operator's runtime override of a provider's flags (store.flags). NULL means
    "as prism.toml says", so a flag nobody touched still follows the file on reload."""
    provider_id = pw.CharField(primary_key=True)
    enabled = pw.BooleanField(null=True)
    images = pw.BooleanField(null=True)
    video = pw.BooleanField(null=True)
    updated_at = pw.FloatField()

    class Meta:
        table_name = "provider_flag"


class AuditLog(_Base):
    """Who changed what through the control socket or the admin API; append-only."""
    id = pw.AutoField()
    at = pw.FloatField(index=True)
    actor = pw.CharField()
    action = pw.CharField()
    detail = pw.TextField()   # JSON object

    class Meta:
        table_name = "audit_log"


QUOTA_LEDGER_KINDS = ("hold", "settle", "void", "expire")


class QuotaHold(_Base):
    """A hold against an account's plan windows (store.quota), the window twin of Hold.

    While open it counts its worst case (amount_micros, input_tokens, output_tokens)
    in every window its created_at falls in; settled, it counts what was charged and
    used; voided or expired, nothing. A window's usage is therefore a sum over these
    rows by created_at, and admission is one INSERT ... SELECT guarded by that sum.
    Token usage is recorded as reported (it is not money); the charge is capped at
    the hold like a wallet's, with the excess kept as overrun."""
    id = pw.CharField(primary_key=True)          # 'qhold_...'
    account = pw.ForeignKeyField(Account, backref="quota_holds", on_delete="RESTRICT",
                                 index=False)
    plan = pw.CharField()
    request_id = pw.CharField(unique=True)
    amount_micros = pw.BigIntegerField()
    input_tokens = pw.IntegerField(default=0)
    output_tokens = pw.IntegerField(default=0)
    state = pw.CharField(default="open")
    charged_micros = pw.BigIntegerField(default=0)
    overrun_micros = pw.BigIntegerField(default=0)
    used_input_tokens = pw.IntegerField(default=0)
    used_output_tokens = pw.IntegerField(default=0)
    created_at = pw.FloatField()
    expires_at = pw.FloatField()
    closed_at = pw.FloatField(null=True)

    class Meta:
        table_name = "quota_hold"
        constraints = [_one_of("state", HOLD_STATES),
                       pw.SQL("CHECK (amount_micros >= 0)"),
                       pw.SQL("CHECK (input_tokens >= 0 AND output_tokens >= 0)"),
                       pw.SQL("CHECK (used_input_tokens >= 0 AND used_output_tokens >= 0)"),
                       pw.SQL("CHECK (charged_micros BETWEEN 0 AND amount_micros)"),
                       pw.SQL("CHECK (overrun_micros >= 0)")]
        indexes = (
            # Covers the window sums, so admission reads only the index.
            (("account", "created_at", "state", "amount_micros", "charged_micros",
              "input_tokens", "output_tokens", "used_input_tokens", "used_output_tokens"),
             False),
            (("state", "expires_at"), False),
        )


class QuotaUsage(_Base):
    """Window usage pre-summed by the minute and the hour its holds were created in
    (grain 60 or 3600; start is the bucket's first second). Each bucket is the sum of
    its holds' current values (store.quota keeps it so, in the transaction that
    changes a hold), so a window is summed from at most a minute of hold rows, the
    minute buckets up to the next hour, and hour buckets after that."""
    account_id = pw.CharField()
    grain = pw.IntegerField()
    start = pw.BigIntegerField()
    usd = pw.BigIntegerField(default=0)
    input_tokens = pw.BigIntegerField(default=0)
    output_tokens = pw.BigIntegerField(default=0)

    class Meta:
        table_name = "quota_usage"
        primary_key = pw.CompositeKey("account_id", "grain", "start")
        without_rowid = True


class QuotaEntry(_Base):
    """Append-only books of the window holds: one 'hold' row when a hold is made and
    one terminal row when it ends. amount_micros and the token columns are the usage
    the row adds to its hold's windows (non-zero only on 'settle')."""
    id = pw.AutoField()
    account = pw.ForeignKeyField(Account, backref="quota_entries", on_delete="RESTRICT",
                                 index=False)
    kind = pw.CharField()
    hold = pw.ForeignKeyField(QuotaHold, backref="entries", on_delete="RESTRICT")
    request_id = pw.CharField()
    amount_micros = pw.BigIntegerField(default=0)
    input_tokens = pw.IntegerField(default=0)
    output_tokens = pw.IntegerField(default=0)
    estimated = pw.BooleanField(default=False)
    created_at = pw.FloatField()

    class Meta:
        table_name = "quota_entry"
        constraints = [_one_of("kind", QUOTA_LEDGER_KINDS)]
        indexes = ((("account", "id"), False),)


class IdempotencyRecord(_Base):
    """One Idempotency-Key of one account (store.idempotency): 'pending' while its
    first request runs, then 'done' with the response to replay for 24 hours."""
    account_id = pw.CharField()
    key = pw.CharField()
    body_hash = pw.CharField()
    state = pw.CharField()
    claim = pw.CharField()               # who holds a pending record
    request_id = pw.CharField(null=True)
    status = pw.IntegerField(null=True)
    headers_json = pw.TextField(null=True)
    body = pw.BlobField(null=True)
    complete = pw.BooleanField(default=True)   # False: a stream the client left early
    created_at = pw.FloatField()
    lease_until = pw.FloatField()        # a pending record past this is abandoned
    expires_at = pw.FloatField(index=True)

    class Meta:
        table_name = "idempotency_record"
        primary_key = pw.CompositeKey("account_id", "key")
        constraints = [_one_of("state", ("pending", "done"))]


class Session(_Base):
    """A conversation kept for X-Prism-Session (store.sessions). The id is the client's
    and only unique within its account, so one account can never find, extend or
    delete another's session: every lookup is by (account_id, id).

    ``system`` is the JSON list of canonical system messages; ``messages`` the JSON list
    of {"t": tokens, "m": canonical message} for every other turn, oldest first;
    ``summary`` condenses what compaction removed. ``tokens`` is the prompt the history
    adds (system + summary + messages); ``version`` guards compaction against a turn
    appended meanwhile."""
    account_id = pw.CharField()
    id = pw.CharField()
    created_at = pw.FloatField()
    updated_at = pw.FloatField()
    expires_at = pw.FloatField(index=True)   # sliding; the purge's scan
    system = pw.TextField(default="[]")
    system_tokens = pw.IntegerField(default=0)
    messages = pw.TextField(default="[]")
    message_count = pw.IntegerField(default=0)
    tokens = pw.IntegerField(default=0)
    summary = pw.TextField(null=True)
    summary_tokens = pw.IntegerField(default=0)
    version = pw.IntegerField(default=0)

    class Meta:
        table_name = "session"
        primary_key = pw.CompositeKey("account_id", "id")


# Creation order: every table after the tables it references.
MODELS = (Account, ApiKey, Wallet, Hold, LedgerEntry, RequestLog, SchemaVersion,
          ProviderFlag, AuditLog, StoredResponse, QuotaHold, QuotaEntry,
          QuotaUsage, IdempotencyRecord, Session)

# Video generation jobs (issue 6) live in store.media; appended so migrate creates them.
from store.media import VideoJob  # noqa: E402
MODELS = MODELS + (VideoJob,)

# A2A tasks (issue 15) live in store.a2a; appended so migrate creates them.
from store.a2a import A2ATask  # noqa: E402
MODELS = MODELS + (A2ATask,)
from store.a2a import A2APushConfig  # noqa: E402
MODELS = MODELS + (A2APushConfig,)
# Several processes on one store (issue 17): heartbeats, fan-out events and shared
# rate limits; store.cluster says how they are used.
class ClusterNode(_Base):
    id = pw.CharField(primary_key=True)     # 'node_<host>_<pid>_<random>'
    host = pw.CharField()
    pid = pw.IntegerField()
    started_at = pw.FloatField()
    seen_at = pw.FloatField(index=True)
    info = pw.TextField(default="{}")

    class Meta:
        table_name = "cluster_node"


class ClusterEvent(_Base):
    id = pw.AutoField()
    at = pw.FloatField(index=True)
    origin = pw.CharField()                 # the node that published it ('' for the CLI)
    kind = pw.CharField()
    payload = pw.TextField(default="{}")

    class Meta:
        table_name = "cluster_event"


class RateTat(_Base):
    slot = pw.CharField(primary_key=True)
    tat = pw.TextField()
    expires_at = pw.FloatField(index=True)

    class Meta:
        table_name = "rate_tat"


MODELS = MODELS + (ClusterNode, ClusterEvent, RateTat)
# Files, vector stores and assistants (issue 13) live in their own modules.
from store.files import StoredFile  # noqa: E402
MODELS = MODELS + (StoredFile,)
from store.vector_stores import TABLES as _VECTOR_TABLES  # noqa: E402
MODELS = MODELS + _VECTOR_TABLES
from store.assistants import TABLES as _ASSISTANT_TABLES  # noqa: E402
MODELS = MODELS + _ASSISTANT_TABLES
# Durable jobs: async, scheduled and batch (issue 14) live in store.jobs.
from store.jobs import TABLES as _JOB_TABLES  # noqa: E402
from store.batch_lines import TABLES as _LINE_TABLES  # noqa: E402
MODELS = MODELS + _JOB_TABLES + _LINE_TABLES
from store.batch_native import TABLES as _NATIVE_TABLES  # noqa: E402
MODELS = MODELS + _NATIVE_TABLES
# Organizations and budgets (issue 16) live in store.orgs and store.budgets.
from store.orgs import TABLES as _ORG_TABLES  # noqa: E402
MODELS = MODELS + _ORG_TABLES
# Provider credential rotation and shadow traffic (issue 16) live in their own modules.
from store.rotation import ProviderCredential  # noqa: E402
MODELS = MODELS + (ProviderCredential,)
from store.shadow import ShadowRun  # noqa: E402
MODELS = MODELS + (ShadowRun,)
