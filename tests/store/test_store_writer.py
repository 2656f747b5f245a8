"""The Writer thread: results and errors come back, trio never blocks, and a
cancelled waiter never loses its job."""
import threading

import pytest
import trio

import store

USD = 1_000_000


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "prism.db")


@pytest.fixture
def writer(path):
    w = store.Writer(path)
    w.start()
    yield w
    w.close()


async def funded(writer, micros):
    account, _, _ = await writer.call(store.create_account_with_key, "acme", micros)
    return account.id


def blocker(writer):
    """Occupy the writer thread until the returned event is set."""
    running, release = threading.Event(), threading.Event()

    def hold_the_thread(db):
        running.set()
        release.wait()

    threading.Thread(target=writer.call_sync, args=(hold_the_thread,)).start()
    running.wait()
    return release


async def test_call_returns_the_result(writer):
    account_id = await writer.call(lambda db: store.create_account(db, "acme").id)
    assert (await writer.call(store.get_wallet, account_id)).balance_micros == 0
    assert await writer.call(store.top_up, account_id, 5, reason="x") == 5


async def test_call_reraises_the_jobs_exception_and_carries_on(writer):
    account_id = await funded(writer, 10)
    with pytest.raises(store.InsufficientFunds) as info:
        await writer.call(store.reserve, account_id, "r1", 11, 60)
    assert info.value.available_micros == 10
    assert (await writer.call(store.reserve, account_id, "r2", 10, 60)).amount_micros == 10


async def test_every_job_runs_on_the_one_writer_thread(writer):
    idents = {await writer.call(lambda db: threading.get_ident()) for _ in range(20)}
    idents.add(await trio.to_thread.run_sync(writer.call_sync,
                                             lambda db: threading.get_ident()))
    assert len(idents) == 1 and threading.get_ident() not in idents


async def test_concurrent_admission_through_the_writer(writer):
    account_id = await funded(writer, 10 * 100_000 + 50_000)
    admitted, refused = [], []

    async def attempt(i):
        try:
            admitted.append(await writer.call(store.reserve, account_id, f"r{i}",
                                              100_000, 60))
        except store.InsufficientFunds:
            refused.append(i)

    async with trio.open_nursery() as nursery:
        for i in range(200):
            nursery.start_soon(attempt, i)
    assert (len(admitted), len(refused)) == (10, 190)
    wallet = await writer.call(store.get_wallet, account_id)
    assert (wallet.balance_micros, wallet.held_micros) == (1_050_000, 1_000_000)
    assert await writer.call(store.check_invariants) == []


async def test_the_trio_loop_keeps_running_while_the_writer_is_busy(writer):
    release = await trio.to_thread.run_sync(blocker, writer)
    ticks, answered = 0, []

    async def wait_on_the_busy_writer():
        answered.append(await writer.call(lambda db: "done"))

    # Were the loop blocked on the database, the ticks below would never run and
    # fail_after would fire instead of the test hanging.
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait_on_the_busy_writer)
            for _ in range(10):
                await trio.sleep(0)
                ticks += 1
            assert answered == []
            release.set()
    assert (ticks, answered) == (10, ["done"])


async def test_a_cancelled_waiter_does_not_cancel_its_settlement(writer):
    account_id = await funded(writer, USD)
    hold = await writer.call(store.reserve, account_id, "r1", 300_000, 60)
    release = await trio.to_thread.run_sync(blocker, writer)
    with trio.move_on_after(0.05) as scope:
        await writer.call(store.settle, hold.id, 200_000)   # queued behind the blocker
    assert scope.cancelled_caught
    release.set()
    wallet = await writer.call(store.get_wallet, account_id)
    assert (wallet.balance_micros, wallet.held_micros) == (800_000, 0)


async def test_a_cancelled_waiter_whose_job_is_running_still_gets_it_done(writer):
    account_id = await funded(writer, USD)
    hold = await writer.call(store.reserve, account_id, "r1", 300_000, 60)
    started, release = threading.Event(), threading.Event()

    def slow_settle(db):
        started.set()
        release.wait()
        return store.settle(db, hold.id, 100_000)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.call, slow_settle)
        await trio.to_thread.run_sync(started.wait)
        nursery.cancel_scope.cancel()
    release.set()
    assert (await writer.call(store.hold_for_request, "r1")).state == "settled"


async def test_an_already_cancelled_task_submits_nothing(writer):
    ran = []
    with trio.CancelScope() as scope:
        scope.cancel()
        await writer.call(ran.append)
    assert await writer.call(lambda db: len(ran)) == 0


async def test_call_sync_refuses_to_block_the_trio_loop(writer):
    with pytest.raises(RuntimeError, match="await call"):
        writer.call_sync(lambda db: None)
    assert await trio.to_thread.run_sync(writer.call_sync, lambda db: 7) == 7


def test_call_sync_reraises(writer):
    with pytest.raises(store.AccountNotFound):
        writer.call_sync(store.top_up, "acct_nope", 1)


def test_a_job_cannot_wait_on_the_writer(writer):
    with pytest.raises(RuntimeError, match="wait on itself"):
        writer.call_sync(lambda db: writer.call_sync(lambda db: None))


def test_close_drains_queued_jobs_then_refuses_new_ones(path):
    writer = store.Writer(path)
    writer.start()
    release = blocker(writer)
    done = []
    submitters = [threading.Thread(target=writer.call_sync, args=(done.append,))
                  for _ in range(5)]
    for thread in submitters:
        thread.start()
    while writer.queue_depth < 5:
        threading.Event().wait(0.001)
    closer = threading.Thread(target=writer.close)
    closer.start()
    while writer.queue_depth < 6:   # the five jobs and the stop marker
        threading.Event().wait(0.001)
    with pytest.raises(store.WriterClosed):
        writer.call_sync(done.append)
    release.set()
    closer.join()
    for thread in submitters:
        thread.join()
    assert len(done) == 5
    writer.close()   # a second close is harmless


async def test_aclose_from_trio(path):
    writer = store.Writer(path)
    writer.start()
    await writer.call(store.create_account, "acme")
    await writer.aclose()
    with pytest.raises(store.WriterClosed):
        await writer.call(store.list_keys)


def test_unstarted_writer_refuses_jobs(path):
    with pytest.raises(store.WriterClosed):
        store.Writer(path).call_sync(lambda db: None)


def test_start_reports_a_database_that_cannot_open(tmp_path):
    writer = store.Writer(str(tmp_path / "missing-dir" / "prism.db"))
    with pytest.raises(store.StoreUnavailable):
        writer.start()


def test_writer_as_context_manager_and_writes_persist(path):
    with store.Writer(path) as writer:
        account, _, _ = writer.call_sync(store.create_account_with_key, "acme", 42)
        account_id = account.id
    db = store.open_database(path)
    try:
        assert store.get_wallet(db, account_id).balance_micros == 42
    finally:
        db.close()
