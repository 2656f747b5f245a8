"""What the side-by-side benchmarks start: nginx as the fixed upstream, Prism trees, and
the peer gateways (Portkey's Node gateway, the LiteLLM proxy), each as a child process.

Shared by side_by_side.py (wrk throughput and latency) and open_streams.py (many
concurrent slow streams). Not a pytest module. Tools that are not on the machine are
installed on first use into --tools (default ~/.cache/prism-bench): wrk and nginx with
apt-get, the Portkey gateway with npm, the LiteLLM proxy with pip in its own venv.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "bench-admin-token"
UPSTREAM_KEY = "sk-upstream-bench"
PUBLIC_MODEL = "bench-model"
STREAM_MODEL = "bench-stream"
SLOW_MODEL = "bench-slow"
# Streams that end without a usage chunk: billed by estimate, which loads the tokenizer.
ESTIMATE_MODEL = "bench-estimate"
UPSTREAM_MODEL = "gpt-4o-mini"   # a name LiteLLM's local cost map knows
PORTKEY_VERSION = "1.15.2"
# LiteLLM refuses to start without a master key; with no database it checks only this one.
LITELLM_KEY = "sk-bench-" + "5f0c3a9e7d2b4a61" * 4
FD_LIMIT = 65536

# The fixed answers nginx serves. No '$' (nginx variables) and no "'" (the quoting).
COMPLETION = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000,
    "model": UPSTREAM_MODEL, "system_fingerprint": "fp_bench",
    "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None, "message": {
        "role": "assistant", "content": "The quick brown fox jumps over the lazy dog."}}],
    "usage": {"prompt_tokens": 24, "completion_tokens": 11, "total_tokens": 35}},
    separators=(",", ":"))


def _chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> str:
    body = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000,
            "model": UPSTREAM_MODEL, "choices": [] if usage else
            [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
    if usage:
        body["usage"] = usage
    return "data: " + json.dumps(body, separators=(",", ":")) + "\n\n"


def sse_stream(pieces: int = 8, pad: int = 0, usage: bool = True) -> str:
    words = ["The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog."]
    out = [_chunk({"role": "assistant", "content": ""})]
    for i in range(pieces):
        out.append(_chunk({"content": words[i % len(words)]}))
        if pad:   # SSE comments: nginx's limit_rate spreads the stream over time
            out.append(":" + " " * pad + "\n\n")
    out.append(_chunk({}, "stop"))
    if usage:
        out.append(_chunk({}, usage={"prompt_tokens": 24, "completion_tokens": pieces,
                                     "total_tokens": 24 + pieces}))
    return "".join(out) + "data: [DONE]\n\n"


def chat_body(model: str, stream: bool = False) -> bytes:
    body: dict = {"model": model, "max_tokens": 64, "messages": [
        {"role": "user", "content": "say: The quick brown fox jumps over the lazy dog."}]}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body, separators=(",", ":")).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _child_setup() -> None:
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the bench
    except (OSError, AttributeError):
        pass
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))
    except (ValueError, OSError):
        pass


def raise_fd_limit() -> None:
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))
    except (ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# ---------------------------------------------------------------- tools

def ensure_apt(*binaries: str) -> None:
    missing = [b for b in binaries if shutil.which(b) is None]
    if not missing:
        return
    print(f"installing {missing} with apt-get ...", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def ensure_portkey(tools: Path) -> Path:
    script = tools / "portkey/node_modules/@portkey-ai/gateway/build/start-server.js"
    if not script.exists():
        (tools / "portkey").mkdir(parents=True, exist_ok=True)
        print("installing @portkey-ai/gateway with npm ...", flush=True)
        subprocess.run(["npm", "install", "--prefix", str(tools / "portkey"), "--no-audit",
                        "--no-fund", f"@portkey-ai/gateway@{PORTKEY_VERSION}"], check=True)
    return script


def ensure_litellm(tools: Path) -> Path:
    venv = tools / "litellm-venv"
    exe = venv / "bin/litellm"
    if not exe.exists():
        print("installing litellm[proxy] into its own venv ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin/pip"), "install", "-q", "litellm[proxy]"], check=True)
    return exe


# ---------------------------------------------------------------- processes

class Fleet:
    """Child processes of one benchmark run, stopped together in stop_all()."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: dict[str, subprocess.Popen] = {}

    def spawn(self, name: str, argv: list[str], *, core: int | None, cwd: Path = REPO,
              env: dict | None = None) -> subprocess.Popen:
        if core is not None and shutil.which("taskset"):
            argv = ["taskset", "-c", str(core), *argv]
        with open(self.tmp / f"{name}.out", "wb") as fo, open(self.tmp / f"{name}.err", "wb") as fe:
            p = subprocess.Popen(argv, cwd=cwd, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL,
                                 env={**os.environ, **(env or {})}, preexec_fn=_child_setup)
        self.procs[name] = p
        return p

    def wait_http(self, name: str, url: str, timeout: float = 90.0,
                  headers: dict | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs[name].poll() is not None:
                break
            try:
                req = urllib.request.Request(url, headers=headers or {})
                urllib.request.urlopen(req, timeout=2).read()
                return
            except urllib.error.HTTPError:
                return   # it answers: up
            except (OSError, ValueError):
                time.sleep(0.2)
        err = (self.tmp / f"{name}.err").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{name} did not come up at {url}:\n{err}")

    def rss_mb(self, name: str) -> float:
        """Resident memory of the child and all its descendants (LiteLLM forks workers)."""
        return sum(_status_kb(pid, "VmRSS:") for pid in self._tree(name)) / 1024

    def cpu_s(self, name: str) -> float:
        """CPU seconds (user + system) the child and its descendants have used."""
        total = 0
        for pid in self._tree(name):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            except (OSError, IndexError, ValueError):
                pass
        return total / os.sysconf("SC_CLK_TCK")

    def _tree(self, name: str) -> list[int]:
        root = self.procs[name].pid
        kids: dict[int, list[int]] = {}
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                kids.setdefault(ppid, []).append(int(d.name))
        tree, todo = [], [root]
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo.extend(kids.get(pid, []))
        return tree

    def stop(self, name: str) -> None:
        p = self.procs.pop(name, None)
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)


def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def start_nginx(fleet: Fleet, core: int | None, slow_rate: int = 0) -> str:
    port = free_port()
    quoted = lambda s: "'" + s.replace("\\", "\\\\") + "'"   # noqa: E731
    slow = ""
    if slow_rate:
        slow = (f"location = /slow/v1/chat/completions {{ default_type text/event-stream; "
                f"limit_rate {slow_rate}; return 200 {quoted(sse_stream(pad=200))}; }}")
    conf = fleet.tmp / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
daemon off;
pid {fleet.tmp}/nginx.pid;
error_log {fleet.tmp}/nginx.log warn;
worker_rlimit_nofile {FD_LIMIT};
events {{ worker_connections 30000; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  client_body_temp_path {fleet.tmp}/nginx-body;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location = /v1/chat/completions {{ default_type application/json; return 200 {quoted(COMPLETION)}; }}
    location = /sse/v1/chat/completions {{ default_type text/event-stream; return 200 {quoted(sse_stream())}; }}
    location = /nousage/v1/chat/completions {{ default_type text/event-stream; return 200 {quoted(sse_stream(usage=False))}; }}
    {slow}
  }}
}}
""")
    fleet.spawn("nginx", [shutil.which("nginx") or "nginx", "-c", str(conf), "-e",
                          str(fleet.tmp / "nginx.log")], core=core)
    url = f"http://127.0.0.1:{port}"
    fleet.wait_http("nginx", url + "/v1/chat/completions")
    return url


def prism_toml(tmp: Path, name: str, upstream: str, max_connections: int) -> str:
    providers, models = [], []
    for pid, model, base in (("up", PUBLIC_MODEL, "/v1"), ("ups", STREAM_MODEL, "/sse/v1"),
                             ("upslow", SLOW_MODEL, "/slow/v1"),
                             ("upest", ESTIMATE_MODEL, "/nousage/v1")):
        providers.append(f'[[providers]]\nid = "{pid}"\nkind = "openai"\nbase_url = '
                         f'"{upstream}{base}"\napi_key_env = "PRISM_BENCH_UPSTREAM_KEY"\n'
                         f'read_timeout = 120\nmax_connections = {max_connections}\n')
        models.append(f'[[models]]\nid = "{model}"\ninput_usd_per_mtok = 1.0\n'
                      f'output_usd_per_mtok = 2.0\nroutes = [{{provider = "{pid}", '
                      f'model = "{UPSTREAM_MODEL}"}}]\n')
    return f"""
[server]
host = "127.0.0.1"
port = 0
shutdown_grace = 2
[store]
path = "{tmp / f'{name}.db'}"
sweep_interval = 3600
[control]
socket = "{tmp / f'{name}.sock'}"
[bootstrap]
dev_key = false
""" + "\n".join(providers + models)


def start_prism(fleet: Fleet, name: str, tree: Path, upstream: str, core: int | None,
                max_connections: int = 100) -> tuple[str, dict]:
    """Start the Prism of one source tree; return (base url, headers with a funded key)."""
    port = free_port()
    cfg = fleet.tmp / f"{name}.toml"
    cfg.write_text(prism_toml(fleet.tmp, name, upstream, max_connections))
    fleet.spawn(name, [sys.executable, "-m", "gateway.cli", "serve", "--config", str(cfg),
                       "--port", str(port)], core=core, cwd=tree, env={
        "PYTHONPATH": str(tree), "PRISM_ADMIN_TOKEN": ADMIN_TOKEN,
        "PRISM_BENCH_UPSTREAM_KEY": UPSTREAM_KEY})
    url = f"http://127.0.0.1:{port}"
    fleet.wait_http(name, url + "/readyz")
    req = urllib.request.Request(url + "/-/keys", method="POST", data=json.dumps(
        {"name": "bench", "credits_usd": 1_000_000}).encode(), headers={
        "authorization": f"Bearer {ADMIN_TOKEN}", "content-type": "application/json"})
    key = json.loads(urllib.request.urlopen(req, timeout=10).read())["key"]
    return url, {"authorization": f"Bearer {key}"}


def estimated_streams(url: str, headers: dict, n: int = 3) -> None:
    """A few streams whose upstream sends no usage, so Prism bills them by counting the
    delivered text: RSS after load then includes whatever the exact counter costs."""
    for _ in range(n):
        req = urllib.request.Request(url + "/v1/chat/completions", method="POST",
                                     data=chat_body(ESTIMATE_MODEL, True), headers={
                                         **headers, "content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            r.read()


def start_portkey(fleet: Fleet, tools: Path, upstream: str, core: int | None) -> tuple[str, dict, dict]:
    """(url, headers for the JSON upstream, headers for the SSE upstream)."""
    script = ensure_portkey(tools)
    port = free_port()
    fleet.spawn("portkey", ["node", str(script), f"--port={port}", "--headless"], core=core,
                cwd=script.parent.parent)
    url = f"http://127.0.0.1:{port}"
    fleet.wait_http("portkey", url + "/")
    base = {"authorization": f"Bearer {UPSTREAM_KEY}", "x-portkey-provider": "openai"}
    return (url, {**base, "x-portkey-custom-host": upstream + "/v1"},
            {**base, "x-portkey-custom-host": upstream + "/sse/v1"},)


def start_litellm(fleet: Fleet, tools: Path, upstream: str, core: int | None) -> tuple[str, dict]:
    exe = ensure_litellm(tools)
    port = free_port()
    cfg = fleet.tmp / "litellm.yaml"
    entries = []
    for model, base in ((PUBLIC_MODEL, "/v1"), (STREAM_MODEL, "/sse/v1")):
        entries.append(f"  - model_name: {model}\n    litellm_params:\n      model: openai/"
                       f"{UPSTREAM_MODEL}\n      api_base: {upstream}{base}\n      api_key: "
                       f"{UPSTREAM_KEY}\n")
    cfg.write_text("model_list:\n" + "".join(entries))
    fleet.spawn("litellm", [str(exe), "--config", str(cfg), "--host", "127.0.0.1", "--port",
                            str(port), "--num_workers", "1"], core=core, cwd=fleet.tmp, env={
        "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR",
        "DISABLE_SCHEMA_UPDATE": "True", "LITELLM_MASTER_KEY": LITELLM_KEY})
    url = f"http://127.0.0.1:{port}"
    fleet.wait_http("litellm", url + "/health/liveliness", timeout=180)
    return url, {"authorization": f"Bearer {LITELLM_KEY}"}
