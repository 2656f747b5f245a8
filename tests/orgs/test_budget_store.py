"""Key and org budgets in the store's admission write, on SQLite and PostgreSQL: many
threads (each its own connection) admitting and settling against one org budget never
take the org past its limit, a refusal rolls the whole admission back (wallet and
every other budget), and the books balance."""
from __future__ import annotations

import random
import threading
import time

import pytest

import store
from store.budgets import Budget, BudgetExceeded, key_budgets
from store.orgs import DEFAULT_ORG, get_org, put_orgs, set_account_org


def _org(db, org_id: str) -> None:
    put_orgs(db, [{"id": org_id, "name": org_id, "config": {}, "secrets_blob": None,
                   "budget_micros": None, "budget_hard": True}])


def test_migration_puts_existing_accounts_in_the_default_org(store_target):
    db = store.open_database(store_target)
    try:
        account = store.create_account(db, "old")
        db.execute_sql("UPDATE account SET org_id = NULL")
        store.migrate(db)          # what opening a file from before orgs does
        row = db.execute_sql("SELECT org_id FROM account WHERE id = ?", (account.id,)).fetchone()
        assert row[0] == DEFAULT_ORG
        assert get_org(db, DEFAULT_ORG)["name"] == "Default"
    finally:
        db.close()


def test_a_refused_budget_rolls_back_the_wallet_hold_and_the_other_budget(store_target):
    db = store.open_database(store_target)
    try:
        account, key, _ = store.create_account_with_key(db, "a", 1_000_000)
        _org(db, "acme")
        assert set_account_org(db, account.id, "acme")
        store.update_key(db, key.id, budget_micros=10_000)
        key_budget = Budget("key", key.id, 10_000)
        org_budget = Budget("org", "acme", 1_500)
        first = store.admit(db, account.id, "r1", 1_000, 60, budgets=[key_budget, org_budget])
        with pytest.raises(BudgetExceeded) as refused:
            store.admit(db, account.id, "r2", 1_000, 60, budgets=[key_budget, org_budget])
        assert refused.value.budget.scope == "org"
        # Nothing of r2 stayed: no hold, the wallet and the key budget as before.
        assert store.hold_for_request(db, "r2") is None
        assert store.get_wallet(db, account.id).held_micros == 1_000
        [kb] = key_budgets(db, account.id, time.time())
        assert kb["held_micros"] == 1_000 and kb["spent_micros"] == 0
        store.quota.close(db, first.hold_id, cost_micros=700)
        [kb] = key_budgets(db, account.id, time.time())
        assert (kb["spent_micros"], kb["held_micros"]) == (700, 0)
        assert store.check_invariants(db) == []
    finally:
        db.close()


def test_expired_holds_release_their_budget_charges(store_target):
    db = store.open_database(store_target)
    try:
        account = store.create_account_with_key(db, "a", 1_000_000)[0]
        budget = Budget("org", DEFAULT_ORG, 5_000)
        store.admit(db, account.id, "r1", 3_000, 1, now=1000.0, budgets=[budget])
        store.sweep(db, now=2000.0)
        assert store.check_invariants(db) == []
        store.admit(db, account.id, "r2", 5_000, 60, now=2000.0, budgets=[budget])
        assert store.check_invariants(db) == []
    finally:
        db.close()


def test_org_budget_holds_under_concurrent_admission(store_target):
    db = store.open_database(store_target)
    try:
        _org(db, "acme")
        accounts = []
        for i in range(10):
            account = store.create_account_with_key(db, f"member-{i}", 10_000_000)[0]
            set_account_org(db, account.id, "acme")
            accounts.append(account.id)
        limit, worst = 60_000, 700
        budget = Budget("org", "acme", limit)
        admitted, refused, errors = [], [], []
        lock = threading.Lock()

        def worker(n: int) -> None:
            rnd = random.Random(n)
            try:
                for j in range(50):
                    account = accounts[(n + j) % len(accounts)]
                    try:
                        hold = store.admit(db, account, f"r-{n}-{j}", worst, 60,
                                           budgets=[budget], position=False)
                    except BudgetExceeded:
                        with lock:
                            refused.append(1)
                        continue
                    cost = rnd.choice([None, 0, rnd.randint(1, worst), worst, worst + 50])
                    store.quota.close(db, hold.hold_id, cost_micros=cost)
                    with lock:
                        admitted.append(cost)
            except Exception as exc:   # surfaced below
                errors.append(exc)
            finally:
                db.close()

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        assert len(admitted) + len(refused) == 500
        assert refused, "the budget never refused: the test did not reach the limit"
        spent, held = db.execute_sql(
            "SELECT spent_micros, held_micros FROM budget_usage WHERE scope = 'org' "
            "AND owner = 'acme'").fetchone()
        assert held == 0
        assert spent <= limit
        # What the org spent is exactly what its members' wallets were charged.
        charged = sum(-e.amount_micros for a in accounts for e in store.ledger_rows(db, a)
                      if e.kind == "settle")
        assert spent == charged
        assert store.check_invariants(db) == []
    finally:
        db.close()
