"""Plan windows in the store: guarded admission, fallthrough, endings, expiry, audit,
and window arithmetic across the 5h, 7d and daily boundaries with a fake clock."""
import pytest

import store
from gateway.billing.windows import DAY, HOUR, plan_windows
from gateway.config import PlanConfig

T0 = 1_700_000_000.0            # 2023-11-14T22:13:20Z
MIDNIGHT = T0 // DAY * DAY + DAY  # the next midnight UTC after T0
PRO = PlanConfig(id="pro", window_5h_usd=1.0, window_7d_usd=3.0, fallthrough_to_wallet=False)
LOG = dict(route="/v1/chat/completions", dialect="openai", status=200)


@pytest.fixture
def db(store_target):
    database = store.open_database(store_target)
    yield database
    database.close()


@pytest.fixture
def acct(db):
    account = store.create_account(db, "sub", plan="pro")
    store.top_up(db, account.id, 500_000, "seed")
    return account.id


class Books:
    """Admit/settle against a plan with an explicit clock."""

    def __init__(self, db, account_id, plan=PRO):
        self.db, self.account_id, self.plan, self.n = db, account_id, plan, 0

    def admit(self, amount, now, *, tokens=(0, 0), ttl=600.0):
        self.n += 1
        return store.admit(self.db, self.account_id, f"r{self.n}", amount, ttl, plan=self.plan.id,
                           windows=plan_windows(self.plan, now), input_tokens=tokens[0],
                           output_tokens=tokens[1], fallthrough=self.plan.fallthrough_to_wallet,
                           now=now)

    def settle(self, hold_id, cost, now, tokens=(0, 0)):
        return store.quota.close(self.db, hold_id, cost_micros=cost, input_tokens=tokens[0],
                                 output_tokens=tokens[1], log=dict(LOG), now=now,
                                 account_id=self.account_id, windows=plan_windows(self.plan, now))

    def usage(self, now):
        pos = store.account_position(self.db, self.account_id, plan_windows(self.plan, now))
        return {w.name: w.used_micros for w in pos.windows}


def test_window_admits_up_to_its_limit_then_refuses_with_the_reset_time(db, acct):
    b = Books(db, acct)
    for i in range(10):
        assert b.admit(100_000, T0 + i).funded_by == "window"
    with pytest.raises(store.QuotaExceeded) as info:
        b.admit(100_000, T0 + 10)
    q = info.value
    assert (q.window, q.dimension, q.used, q.limit, q.needed) == ("5h", "usd", 1_000_000,
                                                                  1_000_000, 100_000)
    assert q.resets_at == T0 + 5 * HOUR            # the oldest hold frees first
    assert store.get_wallet(db, acct).held_micros == 0
    assert store.check_invariants(db) == []


def test_rolling_5h_boundary_is_exact(db, acct):
    b = Books(db, acct)
    hold = b.admit(1_000_000, T0).hold_id
    b.settle(hold, 1_000_000, T0 + 1)
    # Counted while now < T0 + 5h; free at exactly T0 + 5h.
    with pytest.raises(store.QuotaExceeded):
        b.admit(1, T0 + 5 * HOUR - 0.001)
    assert b.usage(T0 + 5 * HOUR - 0.001)["5h"] == 1_000_000
    assert b.usage(T0 + 5 * HOUR)["5h"] == 0
    assert b.admit(1, T0 + 5 * HOUR).funded_by == "window"
    assert b.usage(T0 + 5 * HOUR)["7d"] == 1_000_001


def test_rolling_7d_boundary_and_which_window_refuses(db, acct):
    b = Books(db, acct)
    for day in range(3):   # $1 a day, each 5h window fine, the 7d window fills
        b.settle(b.admit(1_000_000, T0 + day * DAY).hold_id, 1_000_000, T0 + day * DAY + 1)
    with pytest.raises(store.QuotaExceeded) as info:
        b.admit(1, T0 + 3 * DAY)
    assert info.value.window == "7d"
    assert info.value.resets_at == T0 + 7 * DAY
    assert b.usage(T0 + 7 * DAY - 0.001)["7d"] == 3_000_000
    assert b.usage(T0 + 7 * DAY)["7d"] == 2_000_000
    assert b.admit(1_000_000, T0 + 7 * DAY).funded_by == "window"


def test_reset_time_is_when_enough_has_aged_out(db, acct):
    b = Books(db, acct)
    for i in range(4):   # 0.25 each, at T0, T0+1h, T0+2h, T0+3h
        b.settle(b.admit(250_000, T0 + i * HOUR).hold_id, 250_000, T0 + i * HOUR)
    with pytest.raises(store.QuotaExceeded) as info:
        b.admit(600_000, T0 + 4 * HOUR)     # needs three of the four to age out
    assert info.value.resets_at == T0 + 2 * HOUR + 5 * HOUR
    with pytest.raises(store.QuotaExceeded) as info:
        b.admit(1_000_001, T0 + 4 * HOUR)   # more than the whole window: never
    assert info.value.resets_at is None


def test_daily_window_resets_at_the_hour(db):
    plan = PlanConfig(id="day", daily_usd=1.0, daily_reset_hour=0, fallthrough_to_wallet=False)
    account = store.create_account(db, "d", plan="day").id
    b = Books(db, account, plan)
    late = MIDNIGHT - 0.001
    b.settle(b.admit(1_000_000, late - 60).hold_id, 1_000_000, late)
    with pytest.raises(store.QuotaExceeded) as info:
        b.admit(1, late)
    assert info.value.window == "daily" and info.value.resets_at == MIDNIGHT
    assert b.usage(MIDNIGHT)["daily"] == 0
    assert b.admit(1_000_000, MIDNIGHT).funded_by == "window"
    pos = store.account_position(db, account, plan_windows(plan, MIDNIGHT + 5))
    assert pos.windows[0].resets_at == MIDNIGHT + DAY


def test_a_hold_counts_in_the_period_that_admitted_it(db):
    plan = PlanConfig(id="day", daily_usd=1.0, fallthrough_to_wallet=False)
    account = store.create_account(db, "d", plan="day").id
    b = Books(db, account, plan)
    hold = b.admit(900_000, MIDNIGHT - 1).hold_id   # a long stream across midnight
    assert b.usage(MIDNIGHT - 0.5)["daily"] == 900_000
    # After midnight it no longer counts, open or settled: it belongs to yesterday.
    assert b.admit(900_000, MIDNIGHT + 1).funded_by == "window"
    b.settle(hold, 800_000, MIDNIGHT + 30)
    assert b.usage(MIDNIGHT + 31)["daily"] == 900_000
    (old,) = [h for h in store.quota_holds(db, account) if h["id"] == hold]
    assert (old["state"], old["charged_micros"]) == ("settled", 800_000)


def test_token_caps(db):
    plan = PlanConfig(id="free", free=True, daily_input_tokens=100, daily_output_tokens=50,
                      fallthrough_to_wallet=False)
    account = store.create_account(db, "f", plan="free").id
    b = Books(db, account, plan)
    hold = b.admit(0, T0, tokens=(40, 50)).hold_id
    with pytest.raises(store.QuotaExceeded) as info:
        b.admit(0, T0, tokens=(10, 1))
    assert (info.value.dimension, info.value.used, info.value.limit) == ("output_tokens", 50, 50)
    # Settled to what was really used, the room comes back.
    b.settle(hold, 0, T0, tokens=(40, 20))
    b.admit(0, T0, tokens=(60, 30))
    with pytest.raises(store.QuotaExceeded) as info:
        b.admit(0, T0, tokens=(1, 0))
    assert info.value.dimension == "input_tokens"
    assert store.check_invariants(db) == []


def test_fallthrough_to_the_wallet_in_the_same_transaction(db, acct):
    plan = PlanConfig(id="pro", window_5h_usd=0.1, fallthrough_to_wallet=True)
    b = Books(db, acct, plan)
    assert b.admit(100_000, T0).funded_by == "window"
    spill = b.admit(100_000, T0 + 1)
    assert spill.funded_by == "wallet" and not store.is_quota_hold(spill.hold_id)
    assert spill.position.held_micros == 100_000
    with pytest.raises(store.InsufficientFunds) as info:
        b.admit(450_000, T0 + 2)   # wallet has 400_000 available
    assert info.value.quota.window == "5h"
    assert store.get_wallet(db, acct).held_micros == 100_000
    assert store.check_invariants(db) == []


def test_no_plan_windows_means_the_wallet(db, acct):
    got = store.admit(db, acct, "r", 1000, 60, now=T0)
    assert got.funded_by == "wallet" and got.position.available_micros == 499_000


def test_holds_end_exactly_once_and_settle_is_capped(db, acct):
    b = Books(db, acct)
    hold = b.admit(100_000, T0).hold_id
    first = b.settle(hold, 150_000, T0 + 1)
    assert (first.result.charged_micros, first.result.overrun_micros) == (100_000, 50_000)
    assert not first.result.already_closed
    again = b.settle(hold, 1, T0 + 2)
    assert again.result.already_closed and again.result.charged_micros == 100_000
    voided = store.quota.close(db, hold, cost_micros=None)
    assert voided.result.already_closed
    assert b.usage(T0 + 3)["5h"] == 100_000
    with pytest.raises(store.HoldNotFound):
        store.quota.close(db, "qhold_nope", cost_micros=1)
    assert store.check_invariants(db) == []


def test_void_and_expiry_release_the_window(db, acct):
    b = Books(db, acct)
    voided = b.admit(500_000, T0).hold_id
    orphan = b.admit(500_000, T0, ttl=30).hold_id
    store.quota.close(db, voided, cost_micros=None)
    assert b.usage(T0)["5h"] == 500_000
    swept = store.sweep(db, T0 + 29)
    assert swept.window_holds == 0
    swept = store.sweep(db, T0 + 30)
    assert (swept.window_holds, swept.wallet_holds) == (1, 0)
    assert b.usage(T0 + 31)["5h"] == 0
    states = {h["id"]: h["state"] for h in store.quota_holds(db, acct)}
    assert states == {voided: "voided", orphan: "expired"}
    b.admit(1, T0 + 40)
    assert store.startup_sweep(db, T0 + 41).window_holds == 1
    assert store.quota_holds(db, state="open") == []
    assert store.check_invariants(db) == []


def test_settlement_writes_the_log_and_the_books_are_append_only(db, acct):
    b = Books(db, acct)
    hold = b.admit(100_000, T0).hold_id
    b.settle(hold, 42, T0 + 1, tokens=(7, 3))
    (row,) = store.request_logs(db, account_id=None)
    assert (row.request_id, row.cost_micros) == ("r1", 42)
    entries = list(store.QuotaEntry.select().where(store.QuotaEntry.hold == hold))
    assert [(e.kind, e.amount_micros, e.input_tokens, e.output_tokens) for e in entries] == [
        ("hold", 0, 0, 0), ("settle", 42, 7, 3)]
    with pytest.raises(Exception):
        db.execute_sql("UPDATE quota_entry SET amount_micros = 0")
    with pytest.raises(Exception):
        db.execute_sql("DELETE FROM quota_entry")


def test_audit_catches_a_tampered_hold(db, acct):
    b = Books(db, acct)
    hold = b.admit(100_000, T0).hold_id
    b.settle(hold, 10, T0 + 1)
    db.execute_sql("UPDATE quota_hold SET charged_micros = 11 WHERE id = ?", (hold,))
    assert any("rows post" in p for p in store.check_invariants(db))


def test_duplicate_request_is_refused_and_leaves_nothing(db, acct):
    b = Books(db, acct)
    store.admit(db, acct, "same", 1, 60, plan="pro", windows=plan_windows(PRO, T0),
                fallthrough=False, now=T0)
    with pytest.raises(store.DuplicateRequest):
        store.admit(db, acct, "same", 1, 60, plan="pro", windows=plan_windows(PRO, T0),
                    fallthrough=False, now=T0)
    assert len(store.quota_holds(db, acct)) == 1
    assert b.usage(T0)["5h"] == 1


def test_bucketed_window_sums_equal_the_rows_at_any_moment(db, acct):
    """Window sums come from rows + minute + hour buckets; they must equal the plain
    sum over hold rows wherever the window edges fall, for every state mix."""
    import random
    rng = random.Random(7)
    plan = PlanConfig(id="pro", window_5h_usd=1e6, window_7d_usd=1e6, fallthrough_to_wallet=False)
    b = Books(db, acct, plan)
    t = swept_at = T0
    holds = []
    for _ in range(400):
        t += rng.choice([0.0, 0.3, 7.0, 59.9, 61.0, 1800.0, 3599.5, 4 * 3600.0])
        got = b.admit(rng.randrange(1, 10_000), t, tokens=(rng.randrange(50), rng.randrange(50)))
        holds.append(got.hold_id)
        if rng.random() < 0.7:
            end = rng.choice(holds)
            if rng.random() < 0.8:
                b.settle(end, rng.randrange(0, 12_000), t, tokens=(rng.randrange(60), 3))
            else:
                store.quota.close(db, end, cost_micros=None, now=t)
        if rng.random() < 0.05:
            store.sweep(db, t)   # also prunes buckets older than any window from t on
            swept_at = t
    assert store.check_invariants(db) == []
    rows = store.quota_holds(db, acct)

    def naive(now, start, inclusive):
        total = 0
        for h in rows:
            inside = h["created_at"] >= start if inclusive else h["created_at"] > start
            if inside and h["state"] in ("open", "settled"):
                total += h["amount_micros"] if h["state"] == "open" else h["charged_micros"]
        return total

    for _ in range(200):
        now = rng.uniform(swept_at, t + 8 * DAY)   # clocks move forward past sweeps
        windows = plan_windows(plan, now)
        pos = store.account_position(db, acct, windows)
        for w, u in zip(windows, pos.windows):
            assert u.used_micros == naive(now, w.start, w.inclusive), (w.name, now)
    daily = PlanConfig(id="d", daily_usd=1e6, daily_reset_hour=5)
    for _ in range(50):
        now = rng.uniform(swept_at, t + 2 * DAY)
        (w,) = plan_windows(daily, now)
        (u,) = store.account_position(db, acct, (w,)).windows
        assert u.used_micros == naive(now, w.start, True)
