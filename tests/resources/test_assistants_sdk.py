"""The Assistants API through the official openai SDK (client.beta) against a running
gateway whose models are served by the HTTP simulator over each upstream kind."""
from __future__ import annotations

import io
import time

import openai
import pytest
from openai import AssistantEventHandler

import harness
import resources_gw
import store

PLANTED = "The vault combination for Project Heliotrope is seven four nine two."
ASK = 'Use the file_search tool with query="vault combination Heliotrope" and tell me the code.'


@pytest.fixture(scope="module")
def gw(sim_url, tmp_path_factory):
    gw = resources_gw.start(tmp_path_factory.mktemp("asst"), sim_url,
                               upstream_kinds=harness.UPSTREAM_KINDS)
    yield gw
    gw.stop()


def client(gw, credits: float = 5.0) -> tuple[openai.OpenAI, str]:
    key = gw.create_key(credits)["key"]
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0), key


def account_of(gw, key: str) -> str:
    db = gw.db()
    try:
        return store.find_key_by_hash(db, store.hash_key(key)).account_id
    finally:
        db.close()


def knowledge_base(c) -> str:
    doc = "Welcome to the handbook.\n\n" + PLANTED + "\n\nLunch is at noon."
    f = c.files.create(file=("handbook.md", io.BytesIO(doc.encode())), purpose="assistants")
    vs = c.vector_stores.create(name="kb", file_ids=[f.id])
    while c.vector_stores.retrieve(vs.id).status == "in_progress":
        time.sleep(0.05)
    return vs.id


@pytest.mark.parametrize("kind", harness.UPSTREAM_KINDS)
def test_file_search_answers_from_the_document_with_citations(gw, kind):
    c, key = client(gw)
    vs_id = knowledge_base(c)
    asst = c.beta.assistants.create(model=f"via-{kind}", instructions="Answer from the files.",
                                    tools=[{"type": "file_search"}],
                                    tool_resources={"file_search": {"vector_store_ids": [vs_id]}})
    thread = c.beta.threads.create(messages=[{"role": "user", "content": ASK}])
    run = c.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=asst.id,
                                              poll_interval_ms=50)
    assert run.status == "completed", run.last_error
    assert run.usage.prompt_tokens > 0 and run.usage.total_tokens > run.usage.prompt_tokens
    answer = c.beta.threads.messages.list(thread.id, order="desc").data[0]
    assert answer.role == "assistant" and answer.run_id == run.id
    text = answer.content[0].text
    assert "seven four nine two" in text.value
    cites = [a for a in text.annotations if a.type == "file_citation"]
    assert cites and text.value[cites[0].start_index:cites[0].end_index] == cites[0].text
    files = c.files.list().data
    assert cites[0].file_citation.file_id == files[0].id
    steps = c.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    assert steps[0].step_details.tool_calls[0].type == "file_search"
    # Money: both model calls are in the account's usage with their cost, and the books hold.
    db = gw.db()
    try:
        rows, _ = store.usage_rows(db, account_of(gw, key))
        runs = [r for r in rows if r.get("route") == "/v1/threads/runs"] or rows
        assert len(runs) == 2 and all(r["cost_micros"] > 0 for r in runs)
        assert sum(r["tokens_in"] for r in runs) == run.usage.prompt_tokens
        assert store.check_invariants(db) == []
    finally:
        db.close()


def test_function_tool_requires_action_then_submit_outputs(gw):
    c, _ = client(gw)
    asst = c.beta.assistants.create(model="via-openai", tools=[{"type": "function", "function": {
        "name": "get_weather", "parameters": {"type": "object", "properties": {
            "city": {"type": "string"}}, "required": ["city"]}}}])
    thread = c.beta.threads.create()
    c.beta.threads.messages.create(thread.id, role="user", content="Call get_weather city=Paris")
    run = c.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=asst.id,
                                              poll_interval_ms=50)
    assert run.status == "requires_action"
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    assert call.function.name == "get_weather" and '"Paris"' in call.function.arguments
    with pytest.raises(openai.BadRequestError):     # outputs must answer every call
        c.beta.threads.runs.submit_tool_outputs(run.id, thread_id=thread.id, tool_outputs=[])
    run = c.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=thread.id, poll_interval_ms=50,
        tool_outputs=[{"tool_call_id": call.id, "output": "22C and sunny"}])
    assert run.status == "completed"
    msgs = c.beta.threads.messages.list(thread.id, order="asc").data
    assert msgs[-1].content[0].text.value == "Tool result received: 22C and sunny"
    step = c.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data[0]
    assert step.step_details.tool_calls[0].function.output == "22C and sunny"


def test_streaming_helpers_with_an_event_handler(gw):
    c, _ = client(gw)
    asst = c.beta.assistants.create(model="via-anthropic", instructions="Be brief.")
    thread = c.beta.threads.create(messages=[{"role": "user", "content": "say: streamed hello world"}])

    class Handler(AssistantEventHandler):
        def __init__(self) -> None:
            super().__init__()
            self.deltas: list[str] = []
            self.created = False

        def on_text_created(self, text) -> None:
            self.created = True

        def on_text_delta(self, delta, snapshot) -> None:
            self.deltas.append(delta.value)

    handler = Handler()
    with c.beta.threads.runs.stream(thread_id=thread.id, assistant_id=asst.id,
                                    event_handler=handler) as stream:
        stream.until_done()
    assert handler.created and "".join(handler.deltas) == "streamed hello world"
    assert stream.get_final_run().status == "completed"
    assert stream.get_final_messages()[0].content[0].text.value == "streamed hello world"


def test_streamed_function_call_and_streamed_submit(gw):
    c, _ = client(gw)
    asst = c.beta.assistants.create(model="via-gemini", tools=[{"type": "function", "function": {
        "name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}])
    thread = c.beta.threads.create(messages=[{"role": "user", "content": "use the lookup tool q=x"}])
    with c.beta.threads.runs.stream(thread_id=thread.id, assistant_id=asst.id) as stream:
        stream.until_done()
    run = stream.get_final_run()
    assert run.status == "requires_action"
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    with c.beta.threads.runs.submit_tool_outputs_stream(
            run_id=run.id, thread_id=thread.id,
            tool_outputs=[{"tool_call_id": call.id, "output": "found"}]) as stream:
        text = "".join(stream.text_deltas)
    # (Gemini carries a function result as an object, so its echo reads {"output":"found"})
    assert text.startswith("Tool result received: ") and "found" in text


def test_cancel_a_running_run_bills_what_ran(gw):
    c, key = client(gw)
    asst = c.beta.assistants.create(model="via-openai")
    thread = c.beta.threads.create(messages=[{"role": "user", "content":
        "[[sim chunk_chars=2 chunk_delay_ms=100]] say: " + "slow words " * 40}])
    run = c.beta.threads.runs.create(thread_id=thread.id, assistant_id=asst.id)
    deadline = time.time() + 10
    while c.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status != "in_progress":
        assert time.time() < deadline
        time.sleep(0.05)
    time.sleep(0.5)
    cancelled = c.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert cancelled.status in ("cancelling", "cancelled")
    run = c.beta.threads.runs.poll(run.id, thread_id=thread.id, poll_interval_ms=50)
    assert run.status == "cancelled" and run.cancelled_at
    steps = c.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data
    assert steps and all(s.status == "cancelled" for s in steps)
    msg = c.beta.threads.messages.list(thread.id, order="desc").data[0]
    assert msg.run_id == run.id and msg.status == "incomplete"
    with pytest.raises(openai.BadRequestError):
        c.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    db = gw.db()
    try:
        rows, _ = store.usage_rows(db, account_of(gw, key))
        assert len(rows) == 1 and rows[0]["cost_micros"] > 0   # the partial call was billed
        assert store.check_invariants(db) == []
    finally:
        db.close()


def test_crud_refusals_and_another_account(gw):
    c, _ = client(gw)
    other, _ = client(gw)
    with pytest.raises(openai.BadRequestError) as exc:
        c.beta.assistants.create(model="via-openai", tools=[{"type": "code_interpreter"}])
    assert "code_interpreter" in exc.value.message
    asst = c.beta.assistants.create(model="via-openai", name="a", metadata={"k": "v"})
    assert c.beta.assistants.update(asst.id, name="b").name == "b"
    assert asst.id in [a.id for a in c.beta.assistants.list()]
    thread = c.beta.threads.create(messages=[{"role": "user", "content": [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}}]}])
    msg = c.beta.threads.messages.list(thread.id).data[0]
    assert msg.content[1].type == "image_url"
    run = c.beta.threads.create_and_run_poll(assistant_id=asst.id, poll_interval_ms=50,
                                             thread={"messages": [{"role": "user", "content": "hi"}]})
    assert run.status == "completed"
    for call in (lambda: other.beta.assistants.retrieve(asst.id),
                 lambda: other.beta.threads.retrieve(thread.id),
                 lambda: other.beta.threads.messages.list(thread.id),
                 lambda: other.beta.threads.messages.retrieve(msg.id, thread_id=thread.id),
                 lambda: other.beta.threads.runs.retrieve(run.id, thread_id=run.thread_id),
                 lambda: other.beta.threads.runs.list(run.thread_id),
                 lambda: other.beta.threads.runs.create(thread_id=thread.id, assistant_id=asst.id),
                 lambda: other.beta.assistants.delete(asst.id)):
        with pytest.raises(openai.NotFoundError):
            call()
    assert other.beta.assistants.list().data == []
    assert c.beta.threads.delete(thread.id).deleted
    assert c.beta.assistants.delete(asst.id).deleted


def test_restart_mid_run_never_leaves_it_in_progress(sim_url, tmp_path):
    gw = resources_gw.start(tmp_path, sim_url, upstream_kinds=("openai",))
    c, key = client(gw)
    asst = c.beta.assistants.create(model="via-openai")
    thread = c.beta.threads.create(messages=[{"role": "user", "content":
        "[[sim chunk_chars=2 chunk_delay_ms=100]] say: " + "slow words " * 40}])
    run = c.beta.threads.runs.create(thread_id=thread.id, assistant_id=asst.id)
    while c.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status != "in_progress":
        time.sleep(0.05)
    time.sleep(0.3)
    gw.stop()
    gw = resources_gw.start(tmp_path, sim_url, upstream_kinds=("openai",))
    try:
        c = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
        run = c.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
        assert run.status == "failed" and "restarted" in run.last_error.message
        # Nothing the run had open stays in_progress: its step failed, its message is cut.
        steps = c.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data
        assert steps and all(s.status == "failed" and s.failed_at for s in steps)
        msgs = [m for m in c.beta.threads.messages.list(thread.id).data if m.run_id == run.id]
        assert msgs and all(m.status == "incomplete" and m.incomplete_details.reason == "run_failed"
                            for m in msgs)
        db = gw.db()
        try:
            assert store.check_invariants(db) == []
            assert store.open_holds(db, account_of(gw, key)) == []   # the interrupted hold ended
        finally:
            db.close()
        # The thread is usable again.
        again = c.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=asst.id,
                                                    poll_interval_ms=50)
        assert again.status == "completed"
    finally:
        gw.stop()


@pytest.mark.parametrize("kind", ["openai", "gemini"])
def test_responses_hosted_file_search_runs_in_prism(gw, kind):
    c, key = client(gw)
    vs_id = knowledge_base(c)
    r = c.responses.create(model=f"via-{kind}", input=ASK,
                           tools=[{"type": "file_search", "vector_store_ids": [vs_id]}])
    assert r.output[0].type == "file_search_call" and r.output[0].queries == [
        "vault combination Heliotrope"]
    assert "seven four nine two" in r.output_text
    ann = r.output[-1].content[0].annotations
    assert ann and ann[0].type == "file_citation" and ann[0].filename == "handbook.md"
    assert r.tools[0].type == "file_search"
    db = gw.db()
    try:
        rows, _ = store.usage_rows(db, account_of(gw, key))
        chat = [x for x in rows if not x["route"].startswith("/v1/vector_stores")]
        assert len(chat) == 2 and r.usage.input_tokens == sum(x["tokens_in"] for x in chat)
        # ingestion and the model's one search query were embedded, billed
        embeds = [x for x in rows if x["route"].startswith("/v1/vector_stores")]
        assert len(embeds) == 2 and all(x["cost_micros"] > 0 for x in embeds)
        assert store.check_invariants(db) == []
    finally:
        db.close()
    other, _ = client(gw)
    with pytest.raises(openai.NotFoundError):
        other.responses.create(model="via-openai", input=ASK,
                               tools=[{"type": "file_search", "vector_store_ids": [vs_id]}])


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_responses_hosted_file_search_streams(gw, kind):
    c, key = client(gw)
    vs_id = knowledge_base(c)
    tools = [{"type": "file_search", "vector_store_ids": [vs_id]}]
    kinds, deltas = [], []
    with c.responses.stream(model=f"via-{kind}", input=ASK, tools=tools) as stream:
        for ev in stream:
            kinds.append(ev.type)
            if ev.type == "response.output_text.delta":
                deltas.append(ev.delta)
        final = stream.get_final_response()
    # The search shows as a file_search_call item while it runs, then the answer streams.
    for k in ("response.created", "response.file_search_call.in_progress",
              "response.file_search_call.searching", "response.file_search_call.completed",
              "response.output_text.delta", "response.completed"):
        assert k in kinds, k
    assert kinds.index("response.file_search_call.completed") < kinds.index("response.output_text.delta")
    assert "response.function_call_arguments.delta" not in kinds
    assert len(deltas) > 1 and "seven four nine two" in "".join(deltas)
    assert final.output[0].type == "file_search_call"
    assert final.output[0].queries == ["vault combination Heliotrope"]
    assert final.output[0].status == "completed" and "seven four nine two" in final.output_text
    ann = final.output[-1].content[0].annotations
    assert ann and ann[0].type == "file_citation" and ann[0].filename == "handbook.md"
    assert final.tools[0].type == "file_search"
    db = gw.db()
    try:
        rows, _ = store.usage_rows(db, account_of(gw, key))
        chat = [x for x in rows if not x["route"].startswith("/v1/vector_stores")]
        assert len(chat) == 2 and all(x["cost_micros"] > 0 for x in chat)
        assert final.usage.input_tokens == sum(x["tokens_in"] for x in chat)
        assert final.usage.output_tokens == sum(x["tokens_out"] for x in chat)
        assert store.check_invariants(db) == []
        assert store.open_holds(db, account_of(gw, key)) == []
    finally:
        db.close()
    # stored: retrievable with the same output
    assert c.responses.retrieve(final.id).output[0].type == "file_search_call"
    other, _ = client(gw)
    with pytest.raises(openai.NotFoundError):
        other.responses.create(model="via-openai", input=ASK, stream=True, tools=tools)


def test_assistant_file_search_run_streams_with_event_handler(gw):
    c, _ = client(gw)
    vs_id = knowledge_base(c)
    asst = c.beta.assistants.create(model="via-openai", tools=[{"type": "file_search"}],
                                    tool_resources={"file_search": {"vector_store_ids": [vs_id]}})
    thread = c.beta.threads.create(messages=[{"role": "user", "content": ASK}])

    class Handler(AssistantEventHandler):
        def __init__(self) -> None:
            super().__init__()
            self.deltas: list[str] = []
            self.tool_types: list[str] = []

        def on_tool_call_created(self, tool_call) -> None:
            self.tool_types.append(tool_call.type)

        def on_text_delta(self, delta, snapshot) -> None:
            self.deltas.append(delta.value)

    handler = Handler()
    with c.beta.threads.runs.stream(thread_id=thread.id, assistant_id=asst.id,
                                    event_handler=handler) as stream:
        stream.until_done()
    assert stream.get_final_run().status == "completed"
    assert handler.tool_types == ["file_search"]
    assert "seven four nine two" in "".join(handler.deltas)
    text = c.beta.threads.messages.list(thread.id, order="desc").data[0].content[0].text
    assert any(a.type == "file_citation" for a in text.annotations)


def test_responses_file_search_stream_client_leaving_leaves_no_hold(gw):
    import httpx
    c, key = client(gw)
    vs_id = knowledge_base(c)
    body = {"model": "via-openai", "stream": True, "input": "[[sim chunk_chars=2 chunk_delay_ms=50]] " + ASK,
            "tools": [{"type": "file_search", "vector_store_ids": [vs_id]}]}
    with httpx.Client(timeout=30) as h:
        with h.stream("POST", gw.url + "/v1/responses", json=body,
                      headers={"authorization": f"Bearer {key}"}) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if "response.file_search_call.completed" in line:
                    break            # leave while the answer is being streamed
    account = account_of(gw, key)
    deadline = time.time() + 10
    while True:
        db = gw.db()
        try:
            holds, problems = store.open_holds(db, account), store.check_invariants(db)
        finally:
            db.close()
        if not holds or time.time() > deadline:
            break
        time.sleep(0.1)
    assert holds == [] and problems == []
