"""The overdraft race: many connections reserving against one wallet at once.

Admission is one guarded UPDATE under BEGIN IMMEDIATE, so no interleaving of
connections can admit more than the wallet holds. Each thread opens the file itself,
as separate gateway processes would.
"""
import threading

import pytest

import store

THREADS = 8
ATTEMPTS = 1000
HOLD = 100_000
FUNDS = 1_000_000


def race(path, account_id, work):
    """Run work(db, thread_index, attempt_index) ATTEMPTS times over THREADS threads,
    each on its own connection, all released together; returns per-attempt outcomes
    and what a concurrent observer saw."""
    start = threading.Barrier(THREADS + 1)
    outcomes, seen, failures = [], [], []
    finished = threading.Event()

    def worker(index):
        db = store.open_database(path)
        try:
            start.wait()
            for attempt in range(index, ATTEMPTS, THREADS):
                outcomes.append(work(db, index, attempt))
        except BaseException as exc:  # reported by the test thread below
            failures.append(exc)
        finally:
            db.close()

    def observer():
        db = store.open_database(path)
        try:
            while not finished.is_set():
                wallet = store.get_wallet(db, account_id)
                seen.append((wallet.balance_micros, wallet.held_micros))
        finally:
            db.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    watcher = threading.Thread(target=observer)
    for thread in threads:
        thread.start()
    watcher.start()
    start.wait()
    for thread in threads:
        thread.join()
    finished.set()
    watcher.join()
    assert failures == []
    return outcomes, seen


@pytest.fixture
def funded(tmp_path):
    path = str(tmp_path / "prism.db")
    db = store.open_database(path)
    account = store.create_account(db, "racer")
    store.top_up(db, account.id, FUNDS, "seed")
    yield path, db, account.id
    db.close()


def test_concurrent_reservations_never_overdraw(funded):
    path, db, account_id = funded

    def work(conn, index, attempt):
        try:
            store.reserve(conn, account_id, f"r{attempt}", HOLD, 60)
            return "admitted"
        except store.InsufficientFunds as refusal:
            assert refusal.needed_micros == HOLD
            return "refused"

    outcomes, seen = race(path, account_id, work)
    assert outcomes.count("admitted") == FUNDS // HOLD == 10
    assert outcomes.count("refused") == ATTEMPTS - 10
    assert all(balance >= held >= 0 for balance, held in seen)
    wallet = store.get_wallet(db, account_id)
    assert (wallet.balance_micros, wallet.held_micros) == (FUNDS, FUNDS)
    assert len(store.open_holds(db, account_id)) == 10
    assert store.check_invariants(db) == []


def test_concurrent_reserve_and_overrunning_settle_never_overdraw(funded):
    path, db, account_id = funded

    def work(conn, index, attempt):
        try:
            hold = store.reserve(conn, account_id, f"r{attempt}", HOLD, 60)
        except store.InsufficientFunds:
            return "refused"
        # Costs more than it held: the charge is capped, the overrun recorded.
        result = store.settle(conn, hold.id, HOLD + 50_000)
        assert (result.charged_micros, result.overrun_micros) == (HOLD, 50_000)
        return "admitted"

    outcomes, seen = race(path, account_id, work)
    assert outcomes.count("admitted") == 10
    assert all(balance >= held >= 0 for balance, held in seen)
    wallet = store.get_wallet(db, account_id)
    assert (wallet.balance_micros, wallet.held_micros) == (0, 0)
    assert store.check_invariants(db) == []
