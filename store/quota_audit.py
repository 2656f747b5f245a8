"""The window books' audit: every way quota holds, their ledger rows and the usage
buckets disagree with the money rules. store.check_invariants runs it inside its own
read snapshot, beside the wallets' audit."""
from __future__ import annotations

from store.pg import is_postgres
from store.quota_sums import _VALUE_AS

_HOLD_AUDIT = """SELECT h.id, h.state, h.amount_micros, h.charged_micros, h.overrun_micros,
 h.used_input_tokens, h.used_output_tokens, h.closed_at IS NULL,
 COALESCE(SUM(CASE WHEN e.kind = 'hold' THEN 1 ELSE 0 END), 0),
 COALESCE(SUM(CASE WHEN e.kind IN ('settle', 'void', 'expire') THEN 1 ELSE 0 END), 0),
 MAX(CASE WHEN e.kind IN ('settle', 'void', 'expire') THEN e.kind END),
 COALESCE(SUM(e.amount_micros), 0), COALESCE(SUM(e.input_tokens), 0),
 COALESCE(SUM(e.output_tokens), 0),
 COALESCE(SUM(CASE WHEN e.account_id != h.account_id THEN 1 ELSE 0 END), 0)
 FROM quota_hold h LEFT JOIN quota_entry e ON e.hold_id = h.id
 GROUP BY h.id ORDER BY h.id"""
_ROW_AUDIT = """SELECT id, kind FROM quota_entry WHERE kind != 'settle'
 AND (amount_micros != 0 OR input_tokens != 0 OR output_tokens != 0) ORDER BY id"""
# Every bucket equals the sum of its holds' current values, and every open hold has
# its buckets (old settled ones may have been pruned).
_BUCKET_AUDIT = """WITH v AS (
 SELECT account_id, created_at, state, {value_as}
 FROM quota_hold WHERE state IN ('open', 'settled')),
 g AS (SELECT account_id, 60 AS grain, {floor60} * 60 AS start,
        SUM(u) AS u, SUM(i) AS i, SUM(o) AS o, SUM(CASE WHEN state = 'open' THEN 1 ELSE 0 END) AS open FROM v
       GROUP BY 1, 2, 3
       UNION ALL
       SELECT account_id, 3600, {floor3600} * 3600,
        SUM(u), SUM(i), SUM(o), SUM(CASE WHEN state = 'open' THEN 1 ELSE 0 END) FROM v GROUP BY 1, 2, 3)
 SELECT b.account_id, b.grain, b.start, b.usd, b.input_tokens, b.output_tokens,
  COALESCE(g.u, 0), COALESCE(g.i, 0), COALESCE(g.o, 0)
 FROM quota_usage b LEFT JOIN g ON g.account_id = b.account_id AND g.grain = b.grain
  AND g.start = b.start
 WHERE (b.usd, b.input_tokens, b.output_tokens) != (COALESCE(g.u, 0), COALESCE(g.i, 0),
  COALESCE(g.o, 0))
 UNION ALL
 SELECT g.account_id, g.grain, g.start, NULL, NULL, NULL, g.u, g.i, g.o FROM g
 LEFT JOIN quota_usage b ON g.account_id = b.account_id AND g.grain = b.grain
  AND g.start = b.start
 WHERE b.start IS NULL AND g.open > 0 AND (g.u, g.i, g.o) != (0, 0, 0)"""
_TERMINAL_KIND = {"settled": "settle", "voided": "void", "expired": "expire"}


def quota_problems(db) -> list[str]:
    """Every way the window books disagree with the money rules; run by
    store.check_invariants inside its read snapshot."""
    problems: list[str] = []
    for (hold, state, amount, charged, overrun, used_in, used_out, unclosed, opened, ended,
         end_kind, posted, posted_in, posted_out, foreign) in db.execute_sql(_HOLD_AUDIT):
        where = f"window hold {hold} ({state})"
        if opened != 1:
            problems.append(f"{where}: {opened} 'hold' rows, expected 1")
        expected_end = _TERMINAL_KIND.get(state)
        if ended != (0 if expected_end is None else 1) or end_kind != expected_end:
            problems.append(f"{where}: {ended} terminal rows ({end_kind})")
        if unclosed != (state == "open"):
            problems.append(f"{where}: closed_at does not match its state")
        if charged > amount or (overrun and charged != amount):
            problems.append(f"{where}: charged {charged}, overrun {overrun} of {amount}")
        if state != "settled" and (charged or overrun or used_in or used_out):
            problems.append(f"{where}: usage recorded without settling")
        if (posted, posted_in, posted_out) != (charged, used_in, used_out):
            problems.append(f"{where}: rows post {posted}/{posted_in}/{posted_out}, hold "
                            f"says {charged}/{used_in}/{used_out}")
        if foreign:
            problems.append(f"{where}: rows on another account")
    for entry, kind in db.execute_sql(_ROW_AUDIT):
        problems.append(f"quota row {entry}: {kind} carries usage")
    # Buckets start at whole minutes and hours; CAST truncates in SQLite but rounds
    # in PostgreSQL, so the floor is spelled per engine.
    floor = "CAST(FLOOR(created_at / {0}) AS BIGINT)" if is_postgres(db) else \
        "CAST(created_at / {0} AS INTEGER)"
    bucket_audit = _BUCKET_AUDIT.format(value_as=_VALUE_AS, floor60=floor.format(60),
                                        floor3600=floor.format(3600))
    for account, grain, start, *figures in db.execute_sql(bucket_audit):
        bucket, holds = figures[:3], figures[3:]
        if bucket[0] is None:
            problems.append(f"usage bucket {account}/{grain}/{start} is missing for open "
                            f"holds worth {holds}")
        else:
            problems.append(f"usage bucket {account}/{grain}/{start} says {bucket}, its "
                            f"holds {holds}")
    return problems
