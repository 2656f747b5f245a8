"""Admin routes under /-/ against a real gateway on a real socket and SQLite file."""
from __future__ import annotations

import base64
import glob
import math

import httpx
import pytest

import harness
import store

ADMIN_ROUTES = [
    ("GET", "/-/keys"),
    ("POST", "/-/keys"),
    ("GET", "/-/keys/key_x"),
    ("PUT", "/-/keys/key_x"),
    ("DELETE", "/-/keys/key_x"),
    ("POST", "/-/keys/key_x/credits"),
]

CHAT = {"model": "prism-mini", "messages": [{"role": "user", "content": "say: hi"}]}


def _bearer(key: str) -> dict:
    return {"authorization": f"Bearer {key}"}


def _chat(gw, key: str) -> httpx.Response:
    return httpx.post(gw.url + "/v1/chat/completions", json=CHAT, headers=_bearer(key),
                      timeout=30)


def _error(r: httpx.Response) -> dict:
    body = r.json()
    assert set(body) == {"error"}, body
    return body["error"]


def _wallet(gw, account_id):
    db = gw.db()
    try:
        return store.get_wallet(db, account_id)
    finally:
        db.close()


def _ledger(gw, account_id):
    db = gw.db()
    try:
        return store.ledger_rows(db, account_id)
    finally:
        db.close()


def _invariants(gw):
    db = gw.db()
    try:
        return store.check_invariants(db)
    finally:
        db.close()


# ---------------------------------------------------------------- the guard

@pytest.fixture(scope="module")
def gateway_without_admin(sim_url, tmp_path_factory):
    gw = harness.start_gateway(tmp_path_factory.mktemp("noadmin"), sim_url, admin_token=None)
    yield gw
    gw.stop()


@pytest.mark.parametrize("method,path", ADMIN_ROUTES)
@pytest.mark.parametrize("auth", [None, "Bearer " + harness.ADMIN_TOKEN, "Bearer wrong"])
def test_no_admin_token_configured_every_route_is_403(gateway_without_admin, method, path,
                                                      auth):
    headers = {"authorization": auth} if auth else {}
    r = httpx.request(method, gateway_without_admin.url + path, headers=headers,
                      json={"name": "x", "amount_usd": 1}, timeout=30)
    assert r.status_code == 403, r.text
    err = _error(r)
    assert err["type"] == "permission_denied"
    assert "PRISM_ADMIN_TOKEN" in err["message"]
    assert r.headers["x-request-id"].startswith("req_")


def test_no_admin_token_creates_nothing(gateway_without_admin):
    r = httpx.post(gateway_without_admin.url + "/-/keys", json={"name": "sneaky"}, timeout=30)
    assert r.status_code == 403
    db = gateway_without_admin.db()
    try:
        assert store.list_keys(db) == []
    finally:
        db.close()


@pytest.mark.parametrize("method,path", ADMIN_ROUTES)
@pytest.mark.parametrize("auth", [None, "Bearer wrong-token", "Bearer " + harness.ADMIN_TOKEN + "x",
                                  "Basic " + harness.ADMIN_TOKEN, "Bearer"])
def test_wrong_or_missing_admin_token_is_401(gateway, method, path, auth):
    headers = {"authorization": auth} if auth else {}
    r = httpx.request(method, gateway.url + path, headers=headers,
                      json={"name": "x", "amount_usd": 1}, timeout=30)
    assert r.status_code == 401, r.text
    err = _error(r)
    assert err["type"] == "invalid_api_key" and err["code"] == "invalid_admin_token"


def test_a_customer_key_is_not_an_admin_token(gateway):
    key = gateway.create_key(credits_usd=1.0)
    r = httpx.get(gateway.url + "/-/keys", headers=_bearer(key["key"]), timeout=30)
    assert r.status_code == 401


# ---------------------------------------------------------------- create

def test_create_returns_201_with_a_long_random_key(gateway):
    r = gateway.admin.post("/-/keys", json={"name": "alice", "credits_usd": 2.5})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["id"].startswith("key_") and body["account_id"].startswith("acct_")
    assert body["name"] == "alice" and body["revoked"] is False
    assert body["balance_usd"] == "2.500000" and body["held_usd"] == "0.000000"
    key = body["key"]
    assert key.startswith("sk-prism-")
    secret = key[len("sk-prism-"):]
    raw = base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))
    assert len(raw) >= 32                     # >= 256 bits from the CSPRNG
    assert body["prefix"] == key[:len(body["prefix"])] and len(body["prefix"]) < len(key) - 32
    other = gateway.create_key(name="alice")
    assert other["key"] != key and other["id"] != body["id"]
    # usable at once, and billed against the 2.50 it was given
    assert _chat(gateway, key).status_code == 200
    assert _wallet(gateway, body["account_id"]).balance_micros < 2_500_000


def test_create_without_credits_starts_at_zero(gateway):
    r = gateway.admin.post("/-/keys", json={"name": "broke"})
    assert r.status_code == 201
    assert r.json()["balance_usd"] == "0.000000"
    assert _ledger(gateway, r.json()["account_id"]) == []
    r = _chat(gateway, r.json()["key"])
    assert r.status_code == 402 and _error(r)["type"] == "insufficient_balance"


def test_create_with_credits_writes_one_opening_topup(gateway):
    body = gateway.create_key(credits_usd=3.25)
    rows = _ledger(gateway, body["account_id"])
    assert [(row.kind, row.amount_micros, row.balance_after) for row in rows] == \
        [("topup", 3_250_000, 3_250_000)]


def test_plaintext_is_shown_once_and_never_stored(fresh_gateway):
    gw = fresh_gateway
    created = gw.create_key(credits_usd=1.0, name="secretive")
    plaintext = created["key"]
    assert _chat(gw, plaintext).status_code == 200     # touch it: logs, ledger, holds
    listing = gw.admin.get("/-/keys")
    assert listing.status_code == 200
    assert [k["id"] for k in listing.json()["data"]] == [created["id"]]
    one = gw.admin.get(f"/-/keys/{created['id']}")
    renamed = gw.admin.put(f"/-/keys/{created['id']}", json={"name": "renamed"})
    credited = gw.admin.post(f"/-/keys/{created['id']}/credits", json={"amount_usd": 1})
    for r in (listing, one, renamed, credited):
        assert r.status_code == 200, r.text
        assert plaintext not in r.text
        assert plaintext[len("sk-prism-"):] not in r.text
    assert "key" not in one.json()
    needle = plaintext.encode()
    secret = plaintext[len("sk-prism-"):].encode()
    if gw.db_path.startswith("postgresql://"):
        # Every row of every table, as PostgreSQL renders it.
        db = gw.db()
        blobs = {m._meta.table_name: "\n".join(
            r[0] for r in db.execute_sql(f'SELECT t::text FROM "{m._meta.table_name}" t'))
            .encode() for m in store.MODELS}
        db.close()
    else:
        files = glob.glob(gw.db_path + "*")          # the db, its -wal and -shm
        assert gw.db_path in files
        blobs = {path: open(path, "rb").read() for path in files}
    for where, data in blobs.items():
        assert needle not in data and secret not in data, where
    # while what is stored is what identifies the key
    assert any(store.hash_key(plaintext).encode() in data for data in blobs.values())


def test_create_then_get_and_list(gateway):
    created = gateway.create_key(credits_usd=1.5, name="listed")
    r = gateway.admin.get(f"/-/keys/{created['id']}")
    assert r.status_code == 200
    one = r.json()
    assert one["id"] == created["id"] and one["name"] == "listed"
    assert one["balance_usd"] == "1.500000" and one["revoked"] is False
    listed = {k["id"]: k for k in gateway.admin.get("/-/keys").json()["data"]}
    assert listed[created["id"]]["name"] == "listed"


def test_second_key_for_an_existing_account_shares_its_wallet(gateway):
    first = gateway.create_key(credits_usd=2.0)
    r = gateway.admin.post("/-/keys", json={"name": "second", "account_id": first["account_id"]})
    assert r.status_code == 201, r.text
    second = r.json()
    assert second["account_id"] == first["account_id"]
    assert second["balance_usd"] == "2.000000"
    assert _chat(gateway, second["key"]).status_code == 200


def test_unknown_account_id_is_400_not_500(gateway):
    r = gateway.admin.post("/-/keys", json={"name": "x", "account_id": "acct_nope"})
    assert r.status_code == 400, r.text
    assert _error(r)["param"] == "account_id"


def test_credits_with_account_id_are_refused_not_dropped(gateway):
    first = gateway.create_key(credits_usd=1.0)
    r = gateway.admin.post("/-/keys", json={"name": "x", "account_id": first["account_id"],
                                            "credits_usd": 5})
    assert r.status_code == 400 and _error(r)["param"] == "credits_usd"
    assert _wallet(gateway, first["account_id"]).balance_micros == 1_000_000
    keys = gateway.admin.get("/-/keys").json()["data"]
    assert [k["id"] for k in keys if k["account_id"] == first["account_id"]] == [first["id"]]


# ---------------------------------------------------------------- rename, revoke

def test_put_renames_and_the_key_keeps_working(gateway):
    created = gateway.create_key(credits_usd=1.0, name="before")
    assert _chat(gateway, created["key"]).status_code == 200
    r = gateway.admin.put(f"/-/keys/{created['id']}", json={"name": "after"})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "after"
    assert gateway.admin.get(f"/-/keys/{created['id']}").json()["name"] == "after"
    assert _chat(gateway, created["key"]).status_code == 200


@pytest.mark.parametrize("body,param", [
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"name": 5}, "name"),
])
def test_put_validates_the_name(gateway, body, param):
    created = gateway.create_key(name="keep")
    r = gateway.admin.put(f"/-/keys/{created['id']}", json=body)
    assert r.status_code == 400, r.text
    assert _error(r)["param"] == param
    assert gateway.admin.get(f"/-/keys/{created['id']}").json()["name"] == "keep"


def test_unknown_key_id_is_404(gateway):
    for method, path in ADMIN_ROUTES[2:]:
        r = gateway.admin.request(method, path.replace("key_x", "key_doesnotexist"),
                                  json={"name": "n", "amount_usd": 1})
        assert r.status_code == 404, (method, path, r.text)
        assert _error(r)["type"] == "not_found"


def test_delete_revokes_and_the_very_next_request_is_refused(gateway):
    created = gateway.create_key(credits_usd=1.0)
    assert _chat(gateway, created["key"]).status_code == 200     # now cached in memory
    r = gateway.admin.delete(f"/-/keys/{created['id']}")
    assert r.status_code == 200 and r.json() == {"id": created["id"], "revoked": True}
    r = _chat(gateway, created["key"])
    assert r.status_code == 401
    assert _error(r)["type"] == "invalid_api_key"
    shown = gateway.admin.get(f"/-/keys/{created['id']}").json()
    assert shown["revoked"] is True and shown["revoked_at"] > 0
    # the wallet is untouched by revocation
    assert shown["balance_usd"] != "0.000000"


def test_revoking_one_key_leaves_the_accounts_other_keys_working(gateway):
    first = gateway.create_key(credits_usd=1.0)
    r = gateway.admin.post("/-/keys", json={"name": "b", "account_id": first["account_id"]})
    second = r.json()
    assert gateway.admin.delete(f"/-/keys/{first['id']}").status_code == 200
    assert _chat(gateway, first["key"]).status_code == 401
    assert _chat(gateway, second["key"]).status_code == 200


# ---------------------------------------------------------------- credits

def test_credits_positive_and_negative_move_the_balance_and_write_ledger_rows(fresh_gateway):
    gw = fresh_gateway
    created = gw.create_key(credits_usd=1.0)
    acct = created["account_id"]
    r = gw.admin.post(f"/-/keys/{created['id']}/credits",
                      json={"amount_usd": 2.5, "reason": "invoice 42"})
    assert r.status_code == 200, r.text
    assert r.json()["balance_usd"] == "3.500000" and r.json()["account_id"] == acct
    r = gw.admin.post(f"/-/keys/{created['id']}/credits", json={"amount_usd": -0.75})
    assert r.status_code == 200, r.text
    assert r.json()["balance_usd"] == "2.750000"
    assert _wallet(gw, acct).balance_micros == 2_750_000
    rows = _ledger(gw, acct)
    assert [(row.kind, row.amount_micros, row.balance_after) for row in rows] == [
        ("topup", 1_000_000, 1_000_000),
        ("topup", 2_500_000, 3_500_000),
        ("adjust", -750_000, 2_750_000),
    ]
    assert rows[1].reason == "invoice 42"
    assert gw.admin.get(f"/-/keys/{created['id']}").json()["balance_usd"] == "2.750000"
    assert _invariants(gw) == []


def test_correction_below_zero_is_refused_and_changes_nothing(fresh_gateway):
    gw = fresh_gateway
    created = gw.create_key(credits_usd=1.0)
    acct = created["account_id"]
    before = len(_ledger(gw, acct))
    r = gw.admin.post(f"/-/keys/{created['id']}/credits", json={"amount_usd": -1.000001})
    assert r.status_code == 400, r.text
    err = _error(r)
    assert err["type"] == "invalid_request" and err["param"] == "amount_usd"
    assert "below zero" in err["message"]
    assert _wallet(gw, acct).balance_micros == 1_000_000
    assert len(_ledger(gw, acct)) == before
    # exactly to zero is allowed
    r = gw.admin.post(f"/-/keys/{created['id']}/credits", json={"amount_usd": -1})
    assert r.status_code == 200 and r.json()["balance_usd"] == "0.000000"
    assert _invariants(gw) == []


# ---------------------------------------------------------------- validation

@pytest.mark.parametrize("raw,param", [
    (b'{}', "name"),
    (b'{"credits_usd": 1}', "name"),
    (b'{"name": null}', "name"),
    (b'{"name": 42}', "name"),
    (b'{"name": ""}', "name"),
    (b'{"name": "x", "credits_usd": "5"}', "credits_usd"),
    (b'{"name": "x", "credits_usd": true}', "credits_usd"),
    (b'{"name": "x", "credits_usd": [1]}', "credits_usd"),
    (b'{"name": "x", "credits_usd": NaN}', "credits_usd"),
    (b'{"name": "x", "credits_usd": Infinity}', "credits_usd"),
    (b'{"name": "x", "credits_usd": -Infinity}', "credits_usd"),
    (b'{"name": "x", "credits_usd": 1e400}', "credits_usd"),
    (b'{"name": "x", "credits_usd": -1}', "credits_usd"),
    (b'{"name": "x", "credits_usd": 1000000000}', "credits_usd"),
    (b'{"name": "x", "plan": "no-such-plan"}', "plan"),
    (b'{"name": "x", "plan": 3}', "plan"),
])
def test_create_validation_names_the_field(gateway, raw, param):
    before = len(gateway.admin.get("/-/keys").json()["data"])
    r = gateway.admin.post("/-/keys", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    err = _error(r)
    assert err["type"] == "invalid_request"
    assert err["param"] == param
    assert param in err["message"]
    assert len(gateway.admin.get("/-/keys").json()["data"]) == before


@pytest.mark.parametrize("raw,param", [
    (b'{}', "amount_usd"),
    (b'{"amount_usd": "1"}', "amount_usd"),
    (b'{"amount_usd": false}', "amount_usd"),
    (b'{"amount_usd": NaN}', "amount_usd"),
    (b'{"amount_usd": Infinity}', "amount_usd"),
    (b'{"amount_usd": -Infinity}', "amount_usd"),
    (b'{"amount_usd": 0}', "amount_usd"),
    (b'{"amount_usd": 0.0000001}', "amount_usd"),       # rounds to zero micro-USD
    (b'{"amount_usd": 2000000}', "amount_usd"),
    (b'{"amount_usd": 1, "reason": 7}', "reason"),
])
def test_credits_validation_names_the_field(gateway, raw, param):
    created = gateway.create_key(credits_usd=1.0)
    r = gateway.admin.post(f"/-/keys/{created['id']}/credits", content=raw,
                           headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    err = _error(r)
    assert err["type"] == "invalid_request" and err["param"] == param
    assert param in err["message"]
    assert _wallet(gateway, created["account_id"]).balance_micros == 1_000_000
    assert len(_ledger(gateway, created["account_id"])) == 1


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b'"name"', b"\xff\xfe"])
def test_body_that_is_not_a_json_object_is_400(gateway, raw):
    r = gateway.admin.post("/-/keys", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert _error(r)["type"] == "invalid_request"


def test_largest_allowed_credit_is_exact(fresh_gateway):
    gw = fresh_gateway
    r = gw.admin.post("/-/keys", json={"name": "whale", "credits_usd": 1_000_000})
    assert r.status_code == 201, r.text
    assert r.json()["balance_usd"] == "1000000.000000"
    r = gw.admin.post("/-/keys", json={"name": "cents", "credits_usd": 0.1 + 0.2})
    assert r.json()["balance_usd"] == "0.300000"
    assert not math.isnan(float(r.json()["balance_usd"]))


# ---------------------------------------------------------------- connection reuse

def _recv_responses(sock, want: int, timeout: float = 5.0) -> bytes:
    import time
    deadline = time.monotonic() + timeout
    data = b""
    while data.count(b"HTTP/1.1 ") < want or not data.endswith(b"}"):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.parametrize("token", [harness.ADMIN_TOKEN, "wrong-token"])
def test_answer_before_the_upload_ends_does_not_wedge_the_connection(gateway, token):
    """Headers first, body a moment later (as clients do for bigger uploads), on a route
    that does not need the body: the keep-alive connection must still serve the next
    request instead of hanging."""
    import socket
    import time
    host, port = gateway.url.removeprefix("http://").split(":")
    body = b'{"name": "n", "amount_usd": 1}'
    head = (b"DELETE /-/keys/key_doesnotexist HTTP/1.1\r\nHost: t\r\n"
            b"Authorization: Bearer " + token.encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(head)
        time.sleep(0.3)
        sock.sendall(body)
        first = _recv_responses(sock, 1)
        assert first.count(b"HTTP/1.1 ") == 1, first
        sock.sendall(b"GET /-/keys/key_doesnotexist HTTP/1.1\r\nHost: t\r\n"
                     b"Authorization: Bearer " + token.encode() + b"\r\n\r\n")
        second = _recv_responses(sock, 1)
    expected = b"HTTP/1.1 404 " if token == harness.ADMIN_TOKEN else b"HTTP/1.1 401 "
    assert first.startswith(expected) and second.startswith(expected), (first, second)
