"""Hostile request bodies for every route that takes one, and the invariants a running
gateway must keep against them. Shared by tests/hostile (fixed cases) and
fuzz/test_fuzz_http_hostile.py (hypothesis, bounded in CI, long under `python -m fuzz`).

A mutation starts from a valid body of the route and breaks it the way an attacker
would: a lone surrogate, a 5,000-digit integer, NaN/Infinity, deep nesting, a wrong
type, an oversized string, a truncated or non-UTF-8 body, a wrong content type. The
invariants: no answer is 5xx; every 4xx has the route dialect's error shape; and a
refused request leaves the account's ledger, holds and balance as they were.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
for extra in (HERE.parent, HERE.parent / "media"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

import harness  # noqa: E402
import media_setup as ms  # noqa: E402
import store  # noqa: E402

CHAT_MSGS = [{"role": "user", "content": "say: hi"}]
TOOLS = [{"type": "function", "function": {
    "name": "lookup", "description": "find", "parameters": {
        "type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}}]
GEMINI = {"contents": [{"role": "user", "parts": [{"text": "say: hi"}]}],
          "generationConfig": {"temperature": 0.5, "maxOutputTokens": 20}}


@dataclass(frozen=True)
class Route:
    name: str
    dialect: str            # whose error shape a refusal must have
    method: str
    path: str               # {key_id} and {account_id} are filled in per gateway
    body: dict
    admin: bool = False


ROUTES = [
    Route("chat", "openai", "POST", "/v1/chat/completions",
          {"model": "prism-mini", "messages": CHAT_MSGS, "max_tokens": 20, "temperature": 0.5,
           "tools": TOOLS, "stream": False}),
    Route("chat-stream", "openai", "POST", "/v1/chat/completions",
          {"model": "prism-mini", "messages": CHAT_MSGS, "max_tokens": 20, "stream": True,
           "stream_options": {"include_usage": True}}),
    Route("completions", "openai", "POST", "/v1/completions",
          {"model": "prism-mini", "prompt": "say: hi", "max_tokens": 20, "n": 1}),
    Route("responses", "openai", "POST", "/v1/responses",
          {"model": "prism-mini", "input": [{"role": "user", "content": "say: hi"}],
           "max_output_tokens": 20, "instructions": "be brief", "store": True}),
    Route("messages", "anthropic", "POST", "/v1/messages",
          {"model": "prism-mini", "max_tokens": 20, "system": "brief",
           "messages": [{"role": "user", "content": [{"type": "text", "text": "say: hi"}]}]}),
    Route("messages-stream", "anthropic", "POST", "/v1/messages",
          {"model": "prism-mini", "max_tokens": 20, "messages": CHAT_MSGS, "stream": True}),
    Route("count-tokens", "anthropic", "POST", "/v1/messages/count_tokens",
          {"model": "prism-mini", "messages": CHAT_MSGS}),
    Route("generate", "gemini", "POST", "/v1beta/models/prism-mini:generateContent", GEMINI),
    Route("generate-stream", "gemini", "POST",
          "/v1beta/models/prism-mini:streamGenerateContent?alt=sse", GEMINI),
    Route("gemini-count", "gemini", "POST", "/v1beta/models/prism-mini:countTokens", GEMINI),
    Route("images", "openai", "POST", "/v1/images/generations",
          {"model": "img", "prompt": "a cube", "n": 1, "size": "256x256",
           "response_format": "b64_json", "seed": 3}),
    Route("videos", "openai", "POST", "/v1/videos",
          {"model": "vid", "prompt": "a cube", "seconds": "4", "size": "720x1280"}),
    Route("scheduled", "openai", "POST", "/v1/scheduled",
          {"delay_seconds": 3600, "route": "/v1/chat/completions",
           "body": {"model": "prism-mini", "messages": CHAT_MSGS, "max_tokens": 20}}),
    Route("account-keys", "openai", "POST", "/v1/keys", {"name": "second"}),
    Route("admin-keys", "openai", "POST", "/-/keys", {"name": "k", "credits_usd": 1.5},
          admin=True),
    Route("admin-key-update", "openai", "PUT", "/-/keys/{key_id}", {"name": "renamed"},
          admin=True),
    Route("admin-credits", "openai", "POST", "/-/keys/{key_id}/credits",
          {"amount_usd": 0.01, "reason": "fuzz"}, admin=True),
    Route("admin-wallet", "openai", "POST", "/-/accounts/{account_id}/wallet",
          {"amount_usd": 0.01, "reason": "fuzz"}, admin=True),
    Route("admin-flags", "openai", "PUT", "/-/providers/sim-noflag/flags", {"images": False},
          admin=True),
    Route("admin-org", "openai", "PUT", "/-/orgs/fuzz-org/config",
          {"name": "Fuzz", "models": ["prism-mini"], "modes": ["eco"], "budget_usd": 1.5,
           "budget_mode": "soft", "key_rpm": 100}, admin=True),
    Route("admin-org-bulk", "openai", "POST", "/-/orgs/configs/bulk",
          {"orgs": [{"id": "fuzz-a", "budget_usd": 2}, {"id": "fuzz-b", "modes": ["sport"]}]},
          admin=True),
    Route("admin-key-settings", "openai", "PUT", "/-/keys/{key_id}",
          {"rpm": 100000, "metadata": {"team": "fuzz"}, "expires_at": 4102444800},
          admin=True),
]
BY_NAME = {r.name: r for r in ROUTES}

# Text spliced into the serialized body where a placeholder string stands: things
# json.dumps cannot produce (or Python cannot even build, like a 5,000-digit int).
RAW = {
    "surrogate": b'"a\\ud800b"',
    "surrogate-low": b'"\\udfff"',
    "surrogate-bytes": b'"a\xed\xa0\x80b"',
    "huge-int": b"9" * 5000,
    "huge-negative-int": b"-" + b"1" * 4400,
    "big-float": b"1e400",
    "nan": b"NaN",
    "infinity": b"Infinity",
    "minus-infinity": b"-Infinity",
    "deep-list": b"[" * 5000 + b"]" * 5000,
    "deep-object": b'{"a":' * 200 + b"1" + b"}" * 200,
    "bad-utf8": b'"\xff\xfe"',
    "overlong-utf8": b'"\xc0\xaf"',
}
# Ordinary JSON values of the wrong kind, or at the edges of the right one.
VALUES: list[Any] = [
    None, True, False, 0, -1, 1, 2**31, 2**63, -2**63, 10**30, 1.5, -0.0, 1e308, "", "x",
    "\x00", "a" * 200_000, [], {}, ["x"], [None], {"x": 1}, [[[]]], "\u202e\ufeff",
]
CONTENT_TYPES = ["text/plain", "application/x-www-form-urlencoded",
                 "multipart/form-data; boundary=x", "application/json; charset=latin-1", None]


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every location in a JSON value (the root excluded), depth first."""
    out = []
    if isinstance(value, dict):
        for k, v in value.items():
            out.append(prefix + (k,))
            out += paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.append(prefix + (i,))
            out += paths(v, prefix + (i,))
    return out


def _set(body: Any, path: tuple, value: Any) -> Any:
    body = json.loads(json.dumps(body))
    node = body
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return body


@dataclass(frozen=True)
class Mutation:
    """One way to break a valid body; `apply` gives (bytes, content type)."""
    kind: str                    # "raw", "value", "key", "truncate", "insert", "ctype"
    path: tuple = ()
    arg: Any = None

    def apply(self, body: dict) -> tuple[bytes, str | None]:
        ctype: str | None = "application/json"
        if self.kind in ("raw", "value", "key") and not self.path:
            return (RAW[self.arg] if self.kind == "raw" else json.dumps(self.arg).encode()), ctype
        if self.kind == "raw":
            marker = "@@HOSTILE@@"
            data = json.dumps(_set(body, self.path, marker)).encode()
            return data.replace(json.dumps(marker).encode(), RAW[self.arg], 1), ctype
        if self.kind == "value":
            return json.dumps(_set(body, self.path, self.arg)).encode(), ctype
        if self.kind == "key":
            # Rename a key of the object at `path` to something hostile.
            marker = "@@KEY@@"
            # The nearest object key on the path (a list index cannot be renamed).
            keyed = [i for i, p in enumerate(self.path) if isinstance(p, str)]
            path = self.path[: keyed[-1] + 1] if keyed else ()
            if not path:
                return json.dumps(body).encode(), ctype
            parent = path[:-1]
            copy = json.loads(json.dumps(body))
            node = copy
            for p in parent:
                node = node[p]
            node[marker] = node.pop(path[-1])
            data = json.dumps(copy).encode()
            return data.replace(json.dumps(marker).encode(), RAW[self.arg], 1), ctype
        data = json.dumps(body).encode()
        if self.kind == "truncate":
            return data[: self.arg % max(1, len(data))], ctype
        if self.kind == "insert":
            at, junk = self.arg
            at %= len(data) + 1
            return data[:at] + junk + data[at:], ctype
        if self.kind == "ctype":
            return data, self.arg
        raise ValueError(self.kind)


def start(tmp: Path, sim_url: str) -> harness.Gateway:
    return ms.start(tmp, sim_url)


@dataclass
class Target:
    """A running gateway with one funded key and the ids the routes need."""
    gw: harness.Gateway
    key: dict
    client: httpx.Client

    @classmethod
    def make(cls, gw: harness.Gateway) -> "Target":
        return cls(gw, gw.create_key(credits_usd=50.0), httpx.Client(timeout=60))

    def close(self) -> None:
        self.client.close()

    def url(self, route: Route) -> str:
        return self.gw.url + route.path.format(key_id=self.key["id"],
                                               account_id=self.key["account_id"])

    def headers(self, route: Route, ctype: str | None) -> dict[str, str]:
        token = harness.ADMIN_TOKEN if route.admin else self.key["key"]
        h = {"authorization": f"Bearer {token}"}
        if ctype is not None:
            h["content-type"] = ctype
        return h

    def money(self) -> tuple:
        """What a refused request must not change: the account's ledger rows, its
        open holds and its wallet balance. Video jobs a successful mutation started
        settle later on their own, so this waits until none is running first."""
        account = self.key["account_id"]
        ms.wait_for(lambda: not self._open_holds(account), timeout=30)
        db = self.gw.db()
        try:
            rows = [(e.id, e.kind, e.amount_micros) for e in store.ledger_rows(db, account)]
            holds = sorted(h.id for h in store.open_holds(db, account))
            return rows, holds, store.get_wallet(db, account).balance_micros
        finally:
            db.close()

    def _open_holds(self, account: str) -> list:
        db = self.gw.db()
        try:
            return store.open_holds(db, account)
        finally:
            db.close()

    def send(self, route: Route, data: bytes, ctype: str | None) -> httpx.Response:
        return self.client.request(route.method, self.url(route), content=data,
                                   headers=self.headers(route, ctype))


def check_error_shape(dialect: str, r: httpx.Response) -> None:
    body = r.json()
    if dialect == "anthropic":
        assert body.get("type") == "error", body
        assert isinstance(body["error"]["type"], str) and isinstance(body["error"]["message"], str)
    elif dialect == "gemini":
        err = body["error"]
        assert err["code"] == r.status_code and isinstance(err["message"], str)
        assert isinstance(err["status"], str) and err["status"] != "UNKNOWN", body
    else:
        err = body["error"]
        assert {"type", "message", "code", "param"} <= set(err), body
        assert isinstance(err["message"], str) and err["message"]


def check(target: Target, route: Route, mutation: Mutation) -> httpx.Response:
    """Send one mutated body and assert every invariant; returns the response."""
    data, ctype = mutation.apply(route.body)
    before = target.money()
    r = target.send(route, data, ctype)
    where = f"{route.name} {mutation} -> {r.status_code} {r.text[:300]!r}"
    assert r.status_code < 500, where
    assert "Traceback" not in r.text, where
    if r.status_code >= 400:
        try:
            check_error_shape(route.dialect, r)
        except (ValueError, KeyError, TypeError, AssertionError) as exc:
            raise AssertionError(f"{where}: not a {route.dialect} error ({exc!r})") from None
        assert target.money() == before, f"{where}: a refused request moved money"
    return r
