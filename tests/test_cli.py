"""The `prism` command line, run as a real subprocess on real files: key and wallet
commands beside a running gateway, and the first-run experience of `prism serve`."""
from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

import harness
import store

REPO = Path(__file__).resolve().parents[1]
KEY_TTL = 0.5


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("PRISM_ADMIN_TOKEN", None)
    return env


def prism(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=60)


def _chat(url: str, key: str) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", timeout=30,
                      headers={"authorization": f"Bearer {key}"},
                      json={"model": "prism-mini",
                            "messages": [{"role": "user", "content": "say: hello there"}]})


# ---------------------------------------------------------------- beside a live gateway

@pytest.fixture
def live(sim_url, tmp_path):
    """A running gateway and a CLI config naming the same store by a relative path."""
    gw = harness.start_gateway(tmp_path, sim_url, store={"key_cache_ttl": KEY_TTL})
    assert Path(gw.db_path) == tmp_path / "prism.db"
    cli_dir = tmp_path / "cli"
    cli_dir.mkdir()
    cfg = cli_dir / "prism.toml"
    cfg.write_text('[store]\npath = "../prism.db"\n', encoding="utf-8")
    yield gw, cfg, cli_dir
    gw.stop()


def _keys(cfg: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return prism("keys", "--config", str(cfg), *args, cwd=cwd)


def _wallet(cfg: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return prism("wallet", "--config", str(cfg), *args, cwd=cwd)


def test_key_created_by_the_cli_works_at_once_against_the_running_gateway(live):
    gw, cfg, cwd = live
    import json
    proc = _keys(cfg, cwd, "create", "--name", "from-cli", "--credits-usd", "2.5")
    assert proc.returncode == 0, proc.stderr
    made = json.loads(proc.stdout)
    assert made["key"].startswith("sk-prism-") and made["credits_usd"] == "2.500000"
    # the gateway never saw this key: its first use is a cache miss and one lookup
    r = _chat(gw.url, made["key"])
    assert r.status_code == 200, r.text
    assert r.headers["x-prism-cost"] != "0.000000"
    shown = gw.admin.get(f"/-/keys/{made['id']}").json()
    assert shown["name"] == "from-cli" and shown["account_id"] == made["account_id"]
    assert float(shown["balance_usd"]) < 2.5


def test_keys_list_and_revoke_is_honoured_within_the_cache_ttl(live):
    gw, cfg, cwd = live
    import json
    made = json.loads(_keys(cfg, cwd, "create", "--name", "doomed", "--credits-usd", "1").stdout)
    assert _chat(gw.url, made["key"]).status_code == 200      # now cached by the gateway
    listing = _keys(cfg, cwd, "list")
    assert listing.returncode == 0
    line = next(ln for ln in listing.stdout.splitlines() if ln.startswith(made["id"]))
    assert "active" in line and "doomed" in line and made["key"][:12] in line
    assert made["key"] not in listing.stdout                  # only the display prefix

    revoked = _keys(cfg, cwd, "revoke", made["id"])
    assert revoked.returncode == 0 and made["id"] in revoked.stdout
    revoked_at = time.monotonic()
    time.sleep(KEY_TTL + 0.1)
    r = _chat(gw.url, made["key"])
    assert r.status_code == 401, (time.monotonic() - revoked_at, r.text)
    assert r.json()["error"]["type"] == "invalid_api_key"
    line = next(ln for ln in _keys(cfg, cwd, "list").stdout.splitlines()
                if ln.startswith(made["id"]))
    assert "revoked" in line
    # revoking again, or an unknown id, is an error exit with a message
    again = _keys(cfg, cwd, "revoke", made["id"])
    assert again.returncode == 1 and "no active key" in again.stderr
    assert _keys(cfg, cwd, "revoke", "key_nope").returncode == 1


def test_wallet_show_and_adjust(live):
    gw, cfg, cwd = live
    made = gw.create_key(credits_usd=1.0)
    shown = _wallet(cfg, cwd, "show", made["id"])
    assert shown.returncode == 0
    assert shown.stdout.strip() == "balance $1.000000  held $0.000000"

    up = _wallet(cfg, cwd, "adjust", made["id"], "--usd", "2.25", "--reason", "invoice 7")
    assert up.returncode == 0, up.stderr
    assert up.stdout.strip() == "balance $3.250000"
    down = _wallet(cfg, cwd, "adjust", made["id"], "--usd", "-0.25", "--reason", "refund fix")
    assert down.returncode == 0 and down.stdout.strip() == "balance $3.000000"
    # the running gateway sees the same money
    assert gw.admin.get(f"/-/keys/{made['id']}").json()["balance_usd"] == "3.000000"

    too_far = _wallet(cfg, cwd, "adjust", made["id"], "--usd", "-3.000001", "--reason", "x")
    assert too_far.returncode == 1 and "below zero" in too_far.stderr
    for bad in ("0", "nan", "inf", "0.0000001"):
        r = _wallet(cfg, cwd, "adjust", made["id"], "--usd", bad, "--reason", "x")
        assert r.returncode == 2 and "Traceback" not in r.stderr, (bad, r.stderr)
    assert _wallet(cfg, cwd, "show", "key_nope").returncode == 1

    db = gw.db()
    try:
        rows = store.ledger_rows(db, made["account_id"])
        assert [(row.kind, row.amount_micros, row.reason) for row in rows] == [
            ("topup", 1_000_000, "opening credits"),
            ("topup", 2_250_000, "invoice 7"),
            ("adjust", -250_000, "refund fix"),
        ]
        assert store.check_invariants(db) == []
    finally:
        db.close()


@pytest.mark.parametrize("args,message", [
    (("--credits-usd", "-1"), "--credits-usd"),
    (("--credits-usd", "nan"), "--credits-usd"),
    (("--credits-usd", "inf"), "--credits-usd"),
    (("--plan", "no-such-plan"), "unknown plan"),
])
def test_keys_create_refuses_bad_input_without_writing(tmp_path, args, message):
    cfg = tmp_path / "prism.toml"
    cfg.write_text('[store]\npath = "prism.db"\n', encoding="utf-8")
    proc = _keys(cfg, tmp_path, "create", "--name", "x", *args)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    listing = _keys(cfg, tmp_path, "list")
    assert listing.returncode == 0 and listing.stdout == ""


def test_key_commands_with_an_unopenable_store_fail_cleanly(tmp_path):
    cfg = tmp_path / "prism.toml"
    cfg.write_text('[store]\npath = "missing/dir/prism.db"\n', encoding="utf-8")
    proc = _keys(cfg, tmp_path, "list")
    assert proc.returncode == 1 and "store" in proc.stderr and "Traceback" not in proc.stderr


# ---------------------------------------------------------------- first run

class Serve:
    """`prism serve` as a child process, its stdout read line by line on a thread."""

    def __init__(self, cfg: Path, cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--config", str(cfg), "--port", "0"],
            cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for_url(self, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            m = re.match(r"prism: serving on (http://\S+)", line)
            if m:
                return m.group(1)
        self.proc.kill()
        raise AssertionError(f"no URL printed: {self.seen!r} {self.proc.stderr.read()!r}")

    def dev_keys(self) -> list[str]:
        return re.findall(r"sk-prism-[A-Za-z0-9_-]+", "".join(self.seen))

    def interrupt(self, timeout: float = 10.0) -> tuple[int, float, str]:
        started = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        return self.proc.returncode, time.monotonic() - started, self.proc.stderr.read()


@pytest.fixture
def first_run_dir(tmp_path):
    """The shipped prism.toml, unedited, in an empty folder: the first-run setup."""
    shutil.copy(REPO / "prism.toml", tmp_path / "prism.toml")
    return tmp_path


def test_first_run_prints_one_dev_key_that_works_and_restart_prints_none(first_run_dir):
    cfg = first_run_dir / "prism.toml"
    first = Serve(cfg, first_run_dir)
    try:
        url = first.wait_for_url()
        keys = first.dev_keys()
        assert len(keys) == 1, first.seen
        dev_key = keys[0]
        assert any("shown once" in line for line in first.seen)
        r = _chat(url, dev_key)
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"]
        assert httpx.get(url + "/readyz", timeout=10).status_code == 200
    finally:
        code, took, err = first.interrupt()
    assert code == 0, err
    assert took < 5, took
    assert "Traceback" not in err
    assert (first_run_dir / "prism.db").exists()     # relative to the config file

    second = Serve(cfg, first_run_dir)
    try:
        url = second.wait_for_url()
        assert second.dev_keys() == [], second.seen
        assert not any("shown once" in line for line in second.seen)
        # the key from the first run still works, with what is left of its credit
        assert _chat(url, dev_key).status_code == 200
    finally:
        code, took, err = second.interrupt()
    assert code == 0 and took < 5 and "Traceback" not in err, (code, took, err)

    db = store.open_database(str(first_run_dir / "prism.db"))
    try:
        keys = store.list_keys(db)
        assert [k.name for k in keys] == ["development"]
        wallet = store.get_wallet(db, keys[0].account_id)
        from gateway.config import load_config
        opening = round(load_config(cfg).bootstrap.dev_key_credits_usd * 1_000_000)
        assert 0 < wallet.balance_micros < opening and wallet.held_micros == 0
        assert store.check_invariants(db) == []
    finally:
        db.close()


def test_serve_stops_cleanly_on_sigint_right_after_start(first_run_dir):
    """Ctrl-C the moment the URL appears (before any request) still drains cleanly."""
    server = Serve(first_run_dir / "prism.toml", first_run_dir)
    server.wait_for_url()
    code, took, err = server.interrupt()
    assert code == 0, err
    assert took < 5 and "Traceback" not in err


def test_serve_stops_cleanly_on_sigterm(first_run_dir):
    server = Serve(first_run_dir / "prism.toml", first_run_dir)
    url = server.wait_for_url()
    assert httpx.get(url + "/healthz", timeout=10).status_code == 200
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(10) == 0
    assert time.monotonic() - started < 5


def test_dev_key_off_prints_no_key(first_run_dir):
    cfg = first_run_dir / "prism.toml"
    cfg.write_text(cfg.read_text(encoding="utf-8").replace("dev_key = true", "dev_key = false"),
                   encoding="utf-8")
    server = Serve(cfg, first_run_dir)
    try:
        server.wait_for_url()
        assert server.dev_keys() == []
    finally:
        code, _, err = server.interrupt()
    assert code == 0, err


def test_serve_raises_a_low_open_file_limit_to_the_hard_limit():
    """Each open stream holds two sockets; `prism serve` starts by lifting the soft
    RLIMIT_NOFILE (1024 on many systems) to the hard limit."""
    code = ("import resource\n"
            "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
            "resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))\n"
            "from gateway.cli import _raise_fd_limit\n"
            "_raise_fd_limit()\n"
            "print(resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard) or hard == -1)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True, cwd=str(Path(__file__).resolve().parents[1]))
    assert out.stdout.strip() == "True"
