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

    class Meta:
        table_name = "request_log"


class SchemaVersion(_Base):
    id = pw.IntegerField(primary_key=True, constraints=[pw.SQL("CHECK (id = 1)")])
    version = pw.IntegerField()

    class Meta:
        table_name = "schema_version"


# Creation order: every table after the tables it references.
MODELS = (Account, ApiKey, Wallet, Hold, LedgerEntry, RequestLog, SchemaVersion)
