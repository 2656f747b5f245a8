"""Wallet money: top-up, adjust, reserve, settle, void, expiry and the audit."""
import pytest

import store

USD = 1_000_000


@pytest.fixture
def db(store_target):
    database = store.open_database(store_target)
    yield database
    database.close()


@pytest.fixture
def acct(db):
    account = store.create_account(db, "acme")
    store.top_up(db, account.id, USD, "seed")
    return account.id


def figures(db, account_id):
    """(balance, held) after asserting the books agree with the money rules."""
    assert store.check_invariants(db) == []
    wallet = store.get_wallet(db, account_id)
    return wallet.balance_micros, wallet.held_micros


def kinds(db, account_id):
    return [(e.kind, e.amount_micros, e.balance_after)
            for e in store.ledger_rows(db, account_id)]


def test_top_up(db, acct):
    assert store.top_up(db, acct, 250_000, "more") == 1_250_000
    assert figures(db, acct) == (1_250_000, 0)
    assert kinds(db, acct)[-1] == ("topup", 250_000, 1_250_000)


@pytest.mark.parametrize("amount, error", [(0, ValueError), (-5, ValueError),
                                           (1.5, TypeError), (True, TypeError)])
def test_top_up_rejects_non_positive_or_non_integer(db, acct, amount, error):
    with pytest.raises(error):
        store.top_up(db, acct, amount, "bad")
    assert figures(db, acct) == (USD, 0)


def test_unknown_account(db):
    for call in (lambda: store.top_up(db, "acct_nope", 1),
                 lambda: store.adjust(db, "acct_nope", -1),
                 lambda: store.reserve(db, "acct_nope", "r", 1, 60),
                 lambda: store.get_wallet(db, "acct_nope")):
        with pytest.raises(store.AccountNotFound):
            call()
    assert store.ledger_rows(db, "acct_nope") == []


def test_adjust_both_ways(db, acct):
    assert store.adjust(db, acct, -400_000, "refund correction") == 600_000
    assert store.adjust(db, acct, 50_000, "goodwill") == 650_000
    assert figures(db, acct) == (650_000, 0)
    entry = store.ledger_rows(db, acct)[-1]
    assert (entry.kind, entry.amount_micros, entry.reason) == ("adjust", 50_000, "goodwill")


def test_adjust_never_below_zero(db, acct):
    with pytest.raises(store.WouldGoNegative) as info:
        store.adjust(db, acct, -USD - 1, "too much")
    assert (info.value.balance_micros, info.value.held_micros) == (USD, 0)
    assert store.adjust(db, acct, -USD, "exactly all") == 0
    assert figures(db, acct) == (0, 0)
    with pytest.raises(ValueError):
        store.adjust(db, acct, 0, "nothing")


def test_adjust_cannot_take_money_held_for_requests(db, acct):
    store.reserve(db, acct, "r1", 700_000, 60)
    with pytest.raises(store.WouldGoNegative):
        store.adjust(db, acct, -300_001, "claw back")
    assert store.adjust(db, acct, -300_000, "what is free") == 700_000
    assert figures(db, acct) == (700_000, 700_000)


def test_reserve_holds_money(db, acct):
    hold = store.reserve(db, acct, "r1", 300_000, 30, now=100.0)
    assert hold.id.startswith("hold_") and hold.state == "open"
    assert (hold.created_at, hold.expires_at) == (100.0, 130.0)
    assert figures(db, acct) == (USD, 300_000)
    assert kinds(db, acct)[-1] == ("hold", 0, USD)
    assert [h.id for h in store.open_holds(db, acct)] == [hold.id]
    assert store.hold_for_request(db, "r1").id == hold.id


def test_reserve_refuses_what_is_not_available(db, acct):
    store.reserve(db, acct, "r1", 600_000, 60)
    with pytest.raises(store.InsufficientFunds) as info:
        store.reserve(db, acct, "r2", 400_001, 60)
    assert (info.value.available_micros, info.value.needed_micros) == (400_000, 400_001)
    store.reserve(db, acct, "r3", 400_000, 60)
    assert figures(db, acct) == (USD, USD)
    assert store.hold_for_request(db, "r2") is None


def test_reserve_is_one_guarded_update(db, acct):
    statements = []
    if store.is_postgres(db):
        pytest.skip("statement tracing is sqlite3's (the SQL is the same on PostgreSQL)")
    db.connection().set_trace_callback(statements.append)
    store.reserve(db, acct, "r1", 1, 60)
    assert statements[0] == "BEGIN IMMEDIATE"
    assert "SELECT" not in statements[1].upper()
    assert "balance_micros - held_micros >=" in statements[1]


def test_reserve_one_hold_per_request(db, acct):
    store.reserve(db, acct, "r1", 100, 60)
    with pytest.raises(store.DuplicateRequest):
        store.reserve(db, acct, "r1", 100, 60)
    assert figures(db, acct) == (USD, 100)


def test_settle_charges_within_the_hold(db, acct):
    hold = store.reserve(db, acct, "r1", 300_000, 60)
    result = store.settle(db, hold.id, 120_000, estimated=True)
    assert result == store.SettleResult(120_000, 0, 880_000, already_closed=False)
    assert figures(db, acct) == (880_000, 0)
    entry = store.ledger_rows(db, acct)[-1]
    assert (entry.kind, entry.amount_micros, entry.estimated, entry.hold_id) == (
        "settle", -120_000, True, hold.id)


def test_settle_caps_an_overrun_and_records_it(db, acct):
    hold = store.reserve(db, acct, "r1", 300_000, 60)
    result = store.settle(db, hold.id, 450_000)
    assert (result.charged_micros, result.overrun_micros) == (300_000, 150_000)
    assert figures(db, acct) == (700_000, 0)
    [closed] = [h for h in store.Hold.select().execute(db)]
    assert (closed.state, closed.charged_micros, closed.overrun_micros) == (
        "settled", 300_000, 150_000)


def test_overrun_never_overdraws_an_exhausted_wallet(db, acct):
    hold = store.reserve(db, acct, "r1", USD, 60)
    assert store.settle(db, hold.id, 10 * USD).balance_after == 0
    assert figures(db, acct) == (0, 0)


def test_settle_twice_is_a_noop(db, acct):
    hold = store.reserve(db, acct, "r1", 300_000, 60)
    first = store.settle(db, hold.id, 100_000)
    rows = kinds(db, acct)
    again = store.settle(db, hold.id, 999_999)
    assert again == store.SettleResult(100_000, 0, 900_000, already_closed=True)
    assert kinds(db, acct) == rows
    assert first.balance_after == figures(db, acct)[0] == 900_000


def test_void_after_settle_and_settle_after_void_are_noops(db, acct):
    settled = store.reserve(db, acct, "r1", 300_000, 60)
    store.settle(db, settled.id, 100_000)
    assert store.void(db, settled.id).already_closed
    voided = store.reserve(db, acct, "r2", 200_000, 60)
    result = store.void(db, voided.id)
    assert result == store.SettleResult(0, 0, 900_000, already_closed=False)
    assert store.settle(db, voided.id, 50_000) == store.SettleResult(
        0, 0, 900_000, already_closed=True)
    assert store.void(db, voided.id).already_closed
    assert figures(db, acct) == (900_000, 0)
    assert [k for k, _, _ in kinds(db, acct)] == [
        "topup", "hold", "settle", "hold", "void"]


def test_unknown_hold(db):
    with pytest.raises(store.HoldNotFound):
        store.settle(db, "hold_nope", 1)
    with pytest.raises(store.HoldNotFound):
        store.void(db, "hold_nope")


def test_settle_rejects_a_negative_cost(db, acct):
    hold = store.reserve(db, acct, "r1", 10, 60)
    with pytest.raises(ValueError):
        store.settle(db, hold.id, -1)
    assert store.open_holds(db, acct)[0].id == hold.id


def test_settle_writes_the_request_log_in_the_same_transaction(db, acct):
    hold = store.reserve(db, acct, "r1", 300_000, 60)
    statements = []
    if store.is_postgres(db):
        pytest.skip("statement tracing is sqlite3's (the SQL is the same on PostgreSQL)")
    db.connection().set_trace_callback(statements.append)
    store.settle(db, hold.id, 400_000, estimated=True, now=50.0,
                 log=dict(route="/v1/chat/completions", dialect="openai", status=200,
                          model="m", tokens_in=10, tokens_out=20, stream=True))
    assert statements.count("BEGIN IMMEDIATE") == 1 and statements[-1] == "COMMIT"
    [row] = store.request_logs(db)
    assert (row.request_id, row.created_at, row.cost_micros, row.estimated, row.stream,
            row.tokens_out, row.failover) == ("r1", 50.0, 300_000, True, True, 20, False)


def test_a_malformed_log_stops_the_settlement_before_it_starts(db, acct):
    hold = store.reserve(db, acct, "r1", 300_000, 60)
    with pytest.raises(TypeError, match="no_such_column"):
        store.settle(db, hold.id, 1, log=dict(route="/", dialect="openai", status=200,
                                              no_such_column=1))
    with pytest.raises(TypeError, match="status"):
        store.void(db, hold.id, log=dict(route="/", dialect="openai"))
    assert figures(db, acct) == (USD, 300_000)


def test_void_with_log(db, acct):
    hold = store.reserve(db, acct, "r1", 300_000, 60)
    store.void(db, hold.id, log=dict(route="/v1/messages", dialect="anthropic",
                                     status=502, error_type="provider_error"))
    [row] = store.request_logs(db, account_id=None)
    assert (row.status, row.error_type, row.cost_micros) == (502, "provider_error", 0)
    assert figures(db, acct) == (USD, 0)


def test_insert_request_log_for_requests_without_a_hold(db, acct):
    store.insert_request_log(db, request_id="r9", route="/v1/chat/completions",
                             dialect="openai", status=402, account_id=acct,
                             error_type="insufficient_balance")
    with pytest.raises(store.DuplicateRequest):
        store.insert_request_log(db, request_id="r9", route="/", dialect="openai",
                                 status=402)
    with pytest.raises(TypeError):
        store.insert_request_log(db, route="/", dialect="openai", status=400)
    [row] = store.request_logs(db, account_id=acct)
    assert row.error_type == "insufficient_balance" and row.created_at > 0


def test_expire_holds_sweeps_only_the_overdue(db, acct):
    early = store.reserve(db, acct, "r1", 100_000, 10, now=0.0)
    store.reserve(db, acct, "r2", 200_000, 100, now=0.0)
    assert store.expire_holds(db, 9.0) == 0
    assert store.expire_holds(db, 10.0) == 1
    assert figures(db, acct) == (USD, 200_000)
    assert store.expire_holds(db, 10.0) == 0
    assert store.settle(db, early.id, 50_000).already_closed
    assert store.hold_for_request(db, "r1").state == "expired"
    assert kinds(db, acct)[-1] == ("expire", 0, USD)


def test_expire_all_open_at_start_up(db, acct):
    other = store.create_account(db, "other")
    store.top_up(db, other.id, USD)
    for i in range(3):
        store.reserve(db, acct, f"a{i}", 100_000, 3600)
        store.reserve(db, other.id, f"b{i}", 50_000, 3600)
    store.settle(db, store.hold_for_request(db, "a0").id, 1)
    assert store.expire_all_open(db) == 5
    assert store.open_holds(db) == []
    assert figures(db, acct) == (USD - 1, 0)
    assert figures(db, other.id) == (USD, 0)
    assert store.expire_all_open(db) == 0


def test_check_invariants_notices_tampering(db, acct):
    store.reserve(db, acct, "r1", 100, 60)
    db.execute_sql("UPDATE wallet SET balance_micros = balance_micros + 7, "
                   "held_micros = held_micros + 1")
    problems = store.check_invariants(db)
    assert any("balance" in p and "sum of ledger" in p for p in problems)
    assert any("held" in p and "open holds" in p for p in problems)


def test_check_invariants_notices_a_hold_ended_without_a_ledger_row(db, acct):
    hold = store.reserve(db, acct, "r1", 100, 60)
    db.execute_sql("UPDATE hold SET state = 'voided', closed_at = 1 WHERE id = ?",
                   (hold.id,))
    db.execute_sql("UPDATE wallet SET held_micros = 0")
    assert any("terminal ledger rows" in p for p in store.check_invariants(db))


def test_check_invariants_notices_a_second_terminal_row(db, acct):
    hold = store.reserve(db, acct, "r1", 100, 60)
    store.void(db, hold.id)
    with store.write_tx(db):
        store.ledger._post(db, 1, "void", 0, USD, 0.0, hold_id=hold.id)
    assert any("2 terminal ledger rows" in p for p in store.check_invariants(db))
