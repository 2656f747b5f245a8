"""A random walk over the money operations, against a model of what they should do.

After every step the store's own audit must be clean and every wallet must match
the model; reopening the database mid-walk checks nothing lives only in memory.
"""
import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (Bundle, RuleBasedStateMachine, initialize, invariant,
                                 precondition, rule)

import store

ACCOUNTS = 2
micros = st.integers(min_value=0, max_value=2_000_000)


class Books(RuleBasedStateMachine):
    holds = Bundle("holds")

    def __init__(self):
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="prism-store-")
        self.path = str(Path(self.dir) / "prism.db")
        self.db = store.open_database(self.path)
        self.clock = 1_000.0
        self.requests = 0
        self.balance: dict[str, int] = {}
        self.open: dict[str, tuple[str, int, float]] = {}   # hold -> acct, amount, expiry
        self.charged: dict[str, int] = {}                   # ended hold -> its charge

    def teardown(self):
        self.db.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @initialize()
    def accounts(self):
        for i in range(ACCOUNTS):
            self.balance[store.create_account(self.db, f"a{i}").id] = 0
        self.ids = sorted(self.balance)

    def held(self, account_id):
        return sum(amount for acct, amount, _ in self.open.values() if acct == account_id)

    @rule(who=st.integers(0, ACCOUNTS - 1), amount=micros.filter(bool))
    def top_up(self, who, amount):
        account_id = self.ids[who]
        self.balance[account_id] += amount
        assert store.top_up(self.db, account_id, amount, "t") == self.balance[account_id]

    @rule(who=st.integers(0, ACCOUNTS - 1),
          amount=st.integers(-2_000_000, 2_000_000).filter(bool))
    def adjust(self, who, amount):
        account_id = self.ids[who]
        allowed = self.balance[account_id] + amount - self.held(account_id) >= 0
        try:
            result = store.adjust(self.db, account_id, amount, "a")
        except store.WouldGoNegative:
            assert not allowed
        else:
            assert allowed
            self.balance[account_id] += amount
            assert result == self.balance[account_id]

    @rule(target=holds, who=st.integers(0, ACCOUNTS - 1), amount=micros,
          ttl=st.sampled_from([1.0, 5.0, 60.0]))
    def reserve(self, who, amount, ttl):
        account_id = self.ids[who]
        self.requests += 1
        available = self.balance[account_id] - self.held(account_id)
        try:
            hold = store.reserve(self.db, account_id, f"r{self.requests}", amount, ttl,
                                 now=self.clock)
        except store.InsufficientFunds as refusal:
            assert amount > available == refusal.available_micros
            return "hold_never_made"
        assert amount <= available
        self.open[hold.id] = (account_id, amount, self.clock + ttl)
        return hold.id

    def _end(self, hold_id, result, charge):
        if hold_id in self.open:
            account_id, _, _ = self.open.pop(hold_id)
            self.balance[account_id] -= charge
            self.charged[hold_id] = charge
            assert not result.already_closed
            assert result.balance_after == self.balance[account_id]
        else:
            assert result.already_closed
            assert result.charged_micros == self.charged[hold_id]

    @rule(hold_id=holds, cost=micros, estimated=st.booleans())
    def settle(self, hold_id, cost, estimated):
        if hold_id == "hold_never_made":
            return
        amount = self.open[hold_id][1] if hold_id in self.open else 0
        result = store.settle(self.db, hold_id, cost, estimated=estimated,
                              log=dict(route="/r", dialect="openai", status=200))
        if not result.already_closed:
            assert result.charged_micros == min(cost, amount)
            assert result.overrun_micros == max(cost - amount, 0)
        self._end(hold_id, result, min(cost, amount))

    @rule(hold_id=holds)
    def void(self, hold_id):
        if hold_id != "hold_never_made":
            self._end(hold_id, store.void(self.db, hold_id), 0)

    @rule(seconds=st.sampled_from([0.5, 2.0, 10.0]))
    def sweep(self, seconds):
        self.clock += seconds
        due = [h for h, (_, _, expiry) in self.open.items() if expiry <= self.clock]
        assert store.expire_holds(self.db, self.clock) == len(due)
        for hold_id in due:
            del self.open[hold_id]
            self.charged[hold_id] = 0

    @rule()
    def reopen(self):
        self.db.close()
        self.db = store.open_database(self.path)

    @rule()
    def expire_all_open(self):
        assert store.expire_all_open(self.db, now=self.clock) == len(self.open)
        for hold_id in self.open:
            self.charged[hold_id] = 0
        self.open.clear()

    @precondition(lambda self: bool(self.balance))
    @invariant()
    def books_balance(self):
        assert store.check_invariants(self.db) == []
        for account_id, balance in self.balance.items():
            wallet = store.get_wallet(self.db, account_id)
            assert (wallet.balance_micros, wallet.held_micros) == (
                balance, self.held(account_id))
        assert {h.id for h in store.open_holds(self.db)} == set(self.open)


Books.TestCase.settings = settings(max_examples=60, stateful_step_count=40,
                                   deadline=None)
test_books = Books.TestCase
