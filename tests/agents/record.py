"""Record what the coding-agent CLIs send: `python tests/agents/record.py [claude|codex|gemini]`.

Starts the HTTP simulator, a gateway routing a `via-<kind>` model to each upstream kind,
and a recording proxy in front of the gateway; runs each CLI in non-interactive mode
against the proxy, asking it to read a file, and writes every JSON request body it sent
to tests/agents/fixtures/<cli>.json. The CLIs come from npm (see agent_cli.py); this
script is how the fixtures were made and how to refresh them when a CLI changes shape.
"""
from __future__ import annotations

import http.server
import json
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(Path(__file__).parent)]

import harness  # noqa: E402
import agent_cli as agents_cli  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
_HOP = {"content-length", "transfer-encoding", "connection", "content-encoding", "host"}


class Recorder:
    """A buffering reverse proxy that keeps every request body it forwards."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.seen: list[dict] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _any(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                recorder.seen.append({"method": self.command, "path": self.path, "body": body})
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                with httpx.Client(timeout=120) as client:
                    r = client.request(self.command, recorder.target + self.path,
                                       content=raw, headers=headers)
                self.send_response(r.status_code)
                for k, v in r.headers.items():
                    if k.lower() not in _HOP:
                        self.send_header(k, v)
                self.send_header("content-length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            do_GET = do_POST = do_PUT = do_DELETE = _any

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def main(names: list[str]) -> None:
    sim = harness.start_simulator()
    tmp = Path(tempfile.mkdtemp(prefix="prism-record-"))
    gw = harness.start_gateway(tmp, sim.url, **agents_cli.gateway_models(sim.url))
    key = gw.create_key(credits_usd=50)["key"]
    try:
        for name in names:
            rec = Recorder(gw.url)
            work = tmp / name
            try:
                result = agents_cli.run(name, rec.url, key, work, timeout=90,
                                        upstream="via-" + agents_cli.NATIVE[name])
                print(name, "exit", result.returncode, result.stdout[-600:], result.stderr[-600:])
            except subprocess.TimeoutExpired as exc:
                print(name, "timed out", exc.stdout and exc.stdout[-600:], exc.stderr and exc.stderr[-600:])
            print([(s["method"], s["path"]) for s in rec.seen][:20])
            bodies = [s for s in rec.seen if s["method"] == "POST" and isinstance(s["body"], dict)]
            (FIXTURES / f"{name}.json").write_text(json.dumps(bodies, indent=1, ensure_ascii=False) + "\n")
            print(name, "recorded", len(bodies), "requests:", [b["path"] for b in bodies])
            rec.server.shutdown()
    finally:
        gw.stop()
        sim.stop()


if __name__ == "__main__":
    main(sys.argv[1:] or ["claude", "codex", "gemini"])
