"""The wallet random walk (test_store_stateful.Books) extended with plan windows.

On top of top-up / adjust / reserve / settle / void / sweep / restart for wallets, it
reserves against a 5h + 7d window (falling through to the wallet or not), settles and
voids window holds, moves the clock across window boundaries, and sweeps both kinds of
hold. After every step the store's audit must be clean and every window's usage, every
wallet and the set of open holds must match the model.
"""
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, invariant, precondition, rule

import store
from gateway.billing.windows import DAY, HOUR, plan_windows
from gateway.config import PlanConfig
from test_store_stateful import ACCOUNTS, Books, micros

PLAN = PlanConfig(id="pro", window_5h_usd=1.0, window_7d_usd=3.0)
LIMITS = {"5h": (5 * HOUR, 1_000_000), "7d": (7 * DAY, 3_000_000)}


class PlanBooks(Books):
    plan_holds = Bundle("plan_holds")

    def __init__(self):
        super().__init__()
        # window hold -> [account, created_at, amount, state, charged, expires_at]
        self.window: dict[str, list] = {}

    def used(self, account_id, name):
        length, _ = LIMITS[name]
        return sum(amount if state == "open" else charged
                   for acct, created, amount, state, charged, _ in self.window.values()
                   if acct == account_id and state in ("open", "settled")
                   and created > self.clock - length)

    @rule(target=plan_holds, who=st.integers(0, ACCOUNTS - 1), amount=micros,
          ttl=st.sampled_from([1.0, 5.0, 60.0]), fallthrough=st.booleans())
    def reserve_plan(self, who, amount, ttl, fallthrough):
        account_id = self.ids[who]
        self.requests += 1
        fits = all(self.used(account_id, name) + amount <= limit
                   for name, (_, limit) in LIMITS.items())
        available = self.balance[account_id] - self.held(account_id)
        try:
            got = store.admit(self.db, account_id, f"r{self.requests}", amount, ttl,
                              plan="pro", windows=plan_windows(PLAN, self.clock),
                              fallthrough=fallthrough, now=self.clock)
        except store.QuotaExceeded:
            assert not fits and not fallthrough
            return "none"
        except store.InsufficientFunds as refusal:
            assert not fits and fallthrough and amount > available
            assert refusal.quota is not None
            return "none"
        if fits:
            assert got.funded_by == "window"
            self.window[got.hold_id] = [account_id, self.clock, amount, "open", 0,
                                        self.clock + ttl]
        else:
            assert fallthrough and got.funded_by == "wallet" and amount <= available
            self.open[got.hold_id] = (account_id, amount, self.clock + ttl)
        assert got.position.available_micros == (self.balance[account_id]
                                                 - self.held(account_id))
        return got.hold_id

    def _end_plan_hold(self, hold_id, cost):
        if hold_id == "none":
            return
        closed = store.quota.close(self.db, hold_id, cost_micros=cost,
                                   log=dict(route="/r", dialect="openai", status=200))
        if hold_id in self.window:
            h = self.window[hold_id]
            if h[3] == "open":
                assert not closed.result.already_closed
                h[3] = "voided" if cost is None else "settled"
                h[4] = 0 if cost is None else min(cost, h[2])
                assert closed.result.charged_micros == h[4]
            else:
                assert closed.result.already_closed and closed.result.charged_micros == h[4]
        else:   # a hold the wallet paid for after the window refused
            amount = self.open[hold_id][1] if hold_id in self.open else 0
            self._end(hold_id, closed.result, 0 if cost is None else min(cost, amount))

    @rule(hold_id=plan_holds, cost=micros)
    def settle_plan(self, hold_id, cost):
        self._end_plan_hold(hold_id, cost)

    @rule(hold_id=plan_holds)
    def void_plan(self, hold_id):
        self._end_plan_hold(hold_id, None)

    @rule(seconds=st.sampled_from([0.5, 2.0, 10.0, HOUR, 5 * HOUR, DAY, 3 * DAY]))
    def sweep(self, seconds):
        self.clock += seconds
        due = [h for h, (_, _, expiry) in self.open.items() if expiry <= self.clock]
        due_window = [h for h, rec in self.window.items()
                      if rec[3] == "open" and rec[5] <= self.clock]
        swept = store.sweep(self.db, self.clock)
        assert (swept.wallet_holds, swept.window_holds) == (len(due), len(due_window))
        for hold_id in due:
            del self.open[hold_id]
            self.charged[hold_id] = 0
        for hold_id in due_window:
            self.window[hold_id][3] = "expired"

    @rule()
    def expire_all_open(self):
        open_window = [h for h, rec in self.window.items() if rec[3] == "open"]
        swept = store.startup_sweep(self.db, self.clock)
        assert (swept.wallet_holds, swept.window_holds) == (len(self.open), len(open_window))
        for hold_id in self.open:
            self.charged[hold_id] = 0
        self.open.clear()
        for hold_id in open_window:
            self.window[hold_id][3] = "expired"

    @precondition(lambda self: bool(self.balance))
    @invariant()
    def windows_match(self):
        for account_id in self.ids:
            pos = store.account_position(self.db, account_id, plan_windows(PLAN, self.clock))
            assert {w.name: w.used_micros for w in pos.windows} == {
                name: self.used(account_id, name) for name in LIMITS}
        assert {h["id"] for h in store.quota_holds(self.db, state="open")} == {
            h for h, rec in self.window.items() if rec[3] == "open"}


PlanBooks.TestCase.settings = settings(max_examples=40, stateful_step_count=40,
                                       deadline=None)
test_plan_books = PlanBooks.TestCase
