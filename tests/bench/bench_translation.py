"""Translation cost per request for every inbound dialect x upstream kind pair.

Pure codec work only (no sockets): for each pair, the gateway's translation steps are
timed on a realistic request with a system prompt, three turns, a tool and a reply:

    non-stream: client body -> canonical -> upstream body (json.dumps)
                upstream answer (json.loads) -> canonical -> client body (json.dumps)
    stream:     each upstream chunk -> canonical events -> client SSE bytes

Run: python tests/bench/bench_translation.py [--rounds N]
The same-dialect rows (openai->openai, ...) are the baseline a cross-dialect request
is compared with.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any, Callable

from gateway import canonical as c
from gateway.codecs import anthropic, gemini, openai_chat
from gateway.simulator.core import respond, stream_events
from gateway.simulator.wire import OPENAI
from gateway.simulator.wire_anthropic import ANTHROPIC
from gateway.simulator.wire_gemini import GEMINI

DIALECTS = ("openai", "anthropic", "gemini")
TOOL = c.Tool("get_weather", "Weather for a city",
              {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})


def sample_request() -> c.Request:
    msgs = (
        c.Message("system", (c.TextPart("You are a concise assistant for a travel desk."),)),
        c.Message("user", (c.TextPart("I am flying to Oslo next week, what should I pack?"),)),
        c.Message("assistant", (c.TextPart("Layers, a rain shell and comfortable shoes."),)),
        c.Message("user", (c.TextPart("say: " + " ".join(f"word{i}" for i in range(60))),)),
    )
    return c.Request(model="m", messages=msgs, max_tokens=500, temperature=0.3, tools=(TOOL,))


def client_body(dialect: str, req: c.Request) -> dict:
    # A dialect's upstream request body is exactly what its own clients send.
    return {"openai": openai_chat.from_canonical_request, "anthropic": anthropic.from_canonical_request,
            "gemini": gemini.from_canonical_request}[dialect](req, "m")


def decode_client(dialect: str, body: dict, stream: bool) -> c.Request:
    if dialect == "openai":
        return openai_chat.to_canonical_request({**body, "stream": stream})
    if dialect == "anthropic":
        return anthropic.to_canonical_request({**body, "stream": stream})
    return gemini.to_canonical_request(body, model="m", stream=stream)


def upstream_out(kind: str, req: c.Request) -> str:
    return json.dumps(client_body(kind, req))


WIRE = {"openai": OPENAI, "anthropic": ANTHROPIC, "gemini": GEMINI}
DECODE_RESPONSE = {"openai": openai_chat.to_canonical_response,
                   "anthropic": anthropic.to_canonical_response,
                   "gemini": gemini.to_canonical_response}
STREAM_DECODER = {"openai": openai_chat.StreamDecoder,
                  "anthropic": anthropic.StreamDecoder,
                  "gemini": gemini.StreamDecoder}


def upstream_chunks(kind: str, req: c.Request, events: list) -> list[str]:
    """The SSE data payloads an upstream of this kind sends for these events."""
    writer = WIRE[kind].stream_writer(req, "id-1", 0)
    raw = b"".join(writer.encode(ev) for ev in events) + writer.end()
    out = []
    for block in raw.decode().split("\n\n"):
        for line in block.split("\n"):
            if line.startswith("data: ") and line[6:] != "[DONE]":
                out.append(line[6:])
    return out


def time_us(fn: Callable[[], Any], rounds: int) -> float:
    for _ in range(max(5, rounds // 10)):
        fn()
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1e6)
    return statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2000)
    args = ap.parse_args()
    base = sample_request()
    resp = respond(base)
    events = stream_events(base)
    rows = []
    for inbound in DIALECTS:
        body = client_body(inbound, base)
        for kind in DIALECTS:
            answer = json.dumps(WIRE[kind].encode_response(resp))
            chunks = upstream_chunks(kind, base, events)
            client = WIRE[inbound]

            def non_stream() -> None:
                req = decode_client(inbound, body, False)
                upstream_out(kind, req)
                got = DECODE_RESPONSE[kind](json.loads(answer))
                json.dumps(client.encode_response(got))

            def stream() -> None:
                req = decode_client(inbound, body, True)
                upstream_out(kind, req)
                dec = STREAM_DECODER[kind]()
                writer = client.stream_writer(req, "id-2", 0)
                for data in chunks:
                    for ev in dec.feed(json.loads(data)):
                        writer.encode(ev)
                for ev in dec.close():
                    writer.encode(ev)
                writer.end()

            rows.append((inbound, kind, time_us(non_stream, args.rounds),
                         time_us(stream, args.rounds // 2), len(chunks)))
    same = {r[0]: r for r in rows if r[0] == r[1]}
    print(f"translation cost per request (median us; {len(events)} canonical stream events)")
    print(f"{'client':>10} {'upstream':>10} {'non-stream':>11} {'stream':>9} {'chunks':>7} "
          f"{'vs same-dialect':>16}")
    for inbound, kind, ns, st, n in rows:
        base_ns = same[inbound][2]
        print(f"{inbound:>10} {kind:>10} {ns:>11.1f} {st:>9.1f} {n:>7} {ns - base_ns:>+15.1f}us")


if __name__ == "__main__":
    main()
