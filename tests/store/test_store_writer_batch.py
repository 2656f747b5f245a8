"""Group commit in the Writer: queued jobs share one transaction, each in a savepoint."""
import contextlib
import threading

import pytest
import trio

import store
from store.writer import Writer


@pytest.fixture
def path(tmp_path):
    p = str(tmp_path / "prism.db")
    db = store.open_database(p)
    account = store.create_account(db, "a")
    store.top_up(db, account.id, 1_000_000, "seed")
    db.close()
    return p, account.id


def _slow(db, gate: threading.Event):
    gate.wait(5)   # keeps the writer busy so the next jobs queue up behind it
    return "slow"


def _write_then_fail(db, account_id):
    store.top_up(db, account_id, 7, "will be rolled back")
    raise RuntimeError("boom")


def test_queued_jobs_commit_together_and_a_failure_stays_alone(path):
    p, account_id = path
    gate = threading.Event()
    results: dict = {}
    with Writer(p) as writer:
        async def main():
            async def run(name, fn, *args):
                try:
                    results[name] = await writer.call(fn, *args)
                except Exception as exc:
                    results[name] = exc

            async with trio.open_nursery() as nursery:
                nursery.start_soon(run, "slow", _slow, gate)
                await trio.sleep(0.05)
                for i in range(20):
                    nursery.start_soon(run, f"r{i}", store.reserve, account_id, f"r{i}", 60_000, 60)
                nursery.start_soon(run, "bad", _write_then_fail, account_id)
                await trio.sleep(0.1)
                assert writer.queue_depth >= 20
                gate.set()

        trio.run(main)
    assert results["slow"] == "slow"
    assert isinstance(results["bad"], RuntimeError)
    admitted = [k for k in results if k.startswith("r") and not isinstance(results[k], Exception)]
    refused = [k for k in results if isinstance(results[k], store.InsufficientFunds)]
    assert len(admitted) == 16 and len(refused) == 4      # the guard holds inside a batch
    db = store.open_database(p)
    try:
        wallet = store.get_wallet(db, account_id)
        assert (wallet.balance_micros, wallet.held_micros) == (1_000_000, 960_000)
        assert store.check_invariants(db) == []
    finally:
        db.close()


def test_a_failed_commit_fails_every_job_of_the_batch(path, monkeypatch):
    p, account_id = path
    gate = threading.Event()
    results: dict = {}
    real_write_tx = store.writer.write_tx

    @contextlib.contextmanager
    def failing_write_tx(db):
        # The batch's work runs, then its transaction fails as a commit would: rolled back.
        with real_write_tx(db):
            yield
            raise store.StoreUnavailable("disk full at commit")

    with Writer(p) as writer:
        async def main():
            async def run(name, fn, *args):
                try:
                    results[name] = await writer.call(fn, *args)
                except Exception as exc:
                    results[name] = exc

            async with trio.open_nursery() as nursery:
                nursery.start_soon(run, "slow", _slow, gate)
                await trio.sleep(0.05)
                monkeypatch.setattr(store.writer, "write_tx", failing_write_tx)
                for i in range(5):
                    nursery.start_soon(run, f"r{i}", store.reserve, account_id, f"r{i}", 1, 60)
                await trio.sleep(0.1)
                gate.set()

        trio.run(main)
    assert all(isinstance(results[f"r{i}"], store.StoreUnavailable) for i in range(5))
    db = store.open_database(p)
    try:
        assert store.get_wallet(db, account_id).held_micros == 0
        assert store.open_holds(db) == []
    finally:
        db.close()


def test_batch_max_one_commits_each_job(path):
    p, account_id = path
    with Writer(p, batch_max=1) as writer:
        assert writer.call_sync(store.top_up, account_id, 1, "x") == 1_000_001
