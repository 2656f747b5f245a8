"""The writer as a bounded pool on PostgreSQL: a slow statement holds one connection
while the others carry on, and concurrent admissions stay exact."""
import time

import trio

import store

USD = 1_000_000


def _sleep(db, seconds):
    with store.read_tx(db):
        db.execute_sql("SELECT pg_sleep(%s)", (seconds,))


async def test_a_slow_statement_does_not_hold_up_the_pool(pg_database):
    import pgtest
    schema, url = pgtest.fresh_schema(pg_database)
    writer = store.Writer(url, threads=4)
    writer.start()
    try:
        account, _, _ = await writer.call(store.create_account_with_key, "pool", USD)
        quick: list[float] = []
        started = time.monotonic()

        refused = []

        async def admit(i):
            try:
                await writer.call(store.reserve, account.id, f"r{i}", 10_000, 60)
            except store.InsufficientFunds:
                refused.append(i)
                return
            quick.append(time.monotonic() - started)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer.call, _sleep, 1.5)
            await trio.sleep(0.1)
            for i in range(150):          # 1.5 USD asked of a 1 USD wallet
                nursery.start_soon(admit, i)
        # Every admission that was going to succeed did so while the sleep still ran.
        assert len(quick) == 100 and len(refused) == 50
        assert max(quick) < 1.4
        db = store.open_database(url)
        try:
            assert len(store.open_holds(db)) == 100
            wallet = store.get_wallet(db, account.id)
            assert (wallet.balance_micros, wallet.held_micros) == (USD, USD)
            assert store.check_invariants(db) == []
        finally:
            db.close()
    finally:
        writer.close()
        pgtest.drop_schema(pg_database, schema)
