"""The dashboard's Jobs screen against a real gateway over its control socket: a batch
in progress and a scheduled job are listed with their owner and progress, and `x` then
`y` cancels the selected job (the store says cancelled, the audit log says who)."""
from __future__ import annotations

import asyncio
import time

import httpx
import openai
from textual.widgets import DataTable

import store
from tests.jobs import setup
from tests.jobs.test_batches import _chat, _upload
from tui.app import PrismApp
from tui.dialogs import ConfirmDialog


def test_jobs_screen_lists_and_cancels(sim_url, tmp_path, until):
    gw = setup.start(tmp_path, sim_url)
    try:
        key = gw.create_key(credits_usd=5.0)
        oa = openai.OpenAI(base_url=gw.url + "/v1", api_key=key["key"], max_retries=0)
        lines = [_chat(f"t-{i}", f"slow {i} [[sim delay_ms=300]]") for i in range(60)]
        batch = oa.batches.create(input_file_id=_upload(oa, lines),
                                  endpoint="/v1/chat/completions", completion_window="24h")
        sched = httpx.post(gw.url + "/v1/scheduled", headers={"authorization": f"Bearer {key['key']}"},
                           json={"delay_seconds": 3600, "body": _chat("s", "later")["body"]}).json()

        async def main():
            app = PrismApp(gw.socket_path, retry_seconds=0.2, refresh_seconds=0.3)
            app.animation_level = "none"
            async with app.run_test(size=(120, 40)) as pilot:
                await until(pilot, lambda: app.client is not None, what="connected")
                await pilot.press("5")
                table = app.query_one("#jobs-table", DataTable)
                await until(pilot, lambda: batch.id in table.rows and sched["id"] in table.rows,
                            what="jobs listed")
                await until(pilot, lambda: "in_progress" in str(table.get_row(batch.id)[1]),
                            what="batch running")
                row = [str(c) for c in table.get_row(batch.id)]
                assert row[0] == "batch" and row[6] == key["account_id"]
                table.move_cursor(row=table.get_row_index(batch.id))
                await pilot.press("x")
                await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="confirm")
                await pilot.press("y")
                await until(pilot, lambda: "cancel" in str(table.get_row(batch.id)[1]),
                            what="cancelled on screen")
        asyncio.run(main())
        b = oa.batches.retrieve(batch.id)
        for _ in range(100):
            if b.status == "cancelled":
                break
            time.sleep(0.1)
            b = oa.batches.retrieve(batch.id)
        assert b.status == "cancelled" and b.request_counts.completed < 60
        db = gw.db()
        try:
            audit = store.audit_log(db, action="cancel_job")
            assert [a["detail"]["job_id"] for a in audit] == [batch.id]
            assert audit[0]["detail"]["account_id"] == key["account_id"]
            assert store.check_invariants(db) == []
        finally:
            db.close()
    finally:
        gw.stop()
