"""A gateway whose inference models route to every upstream kind the HTTP simulator
speaks, plus the in-process simulator, dead first routes for failover, and models that
must be refused (no price, no capability). Prices are chosen so costs are exact."""
from __future__ import annotations

from pathlib import Path

import harness
import store
from tests.media.media_setup import wallet  # noqa: F401  (the tests read it from here)

EMBED_USD_PER_MTOK = 1.0        # 1 micro-USD per token
SEARCH_USD = 0.002              # 2000 micro-USD per search unit
SPEECH_USD_PER_MCHAR = 15.0     # 15 micro-USD per character
AUDIO_USD_PER_MINUTE = 0.006    # 6000 micro-USD per minute: 0.1 per ms
REQUEST_USD = 0.005             # 5000 micro-USD per web search
PAGE_USD = 0.001                # 1000 micro-USD per page


def _provider(pid: str, kind: str, base: str) -> dict:
    return {"id": pid, "kind": kind, "base_url": base, "api_key_env": "PRISM_TEST_UPSTREAM_KEY",
            "read_timeout": 30.0}


def overrides(tmp: Path, sim: str, **extra) -> dict:
    base = harness.gateway_config(tmp, sim, upstream_kinds=("openai", "anthropic", "gemini"))
    dead = sim + "/_sim/fail/503"
    providers = base["providers"] + [
        _provider("sim-cohere", "cohere", sim), _provider("sim-searxng", "searxng", sim),
        _provider("sim-tavily", "tavily", sim), _provider("sim-mistral", "mistral", sim),
        {"id": "inproc", "kind": "simulator"},
        _provider("dead-openai", "openai", dead + "/v1"), _provider("dead-cohere", "cohere", dead),
        _provider("dead-searxng", "searxng", dead), _provider("dead-mistral", "mistral", dead),
        _provider("dead-gemini", "gemini", dead),
    ]

    def model(mid: str, cap: str, routes: list[tuple[str, str]], **price) -> dict:
        return {"id": mid, "capabilities": [cap], **price,
                "routes": [{"provider": p, "model": m} for p, m in routes]}

    e, r, t = {"input_usd_per_mtok": EMBED_USD_PER_MTOK}, {"search_usd": SEARCH_USD}, \
        {"speech_usd_per_mchar": SPEECH_USD_PER_MCHAR}
    a, q, pg = {"audio_usd_per_minute": AUDIO_USD_PER_MINUTE}, {"request_usd": REQUEST_USD}, \
        {"page_usd": PAGE_USD}
    models = base["models"] + [
        model("emb-openai", "embeddings", [("sim-openai", "sim-embed")], **e),
        model("emb-gemini", "embeddings", [("sim-gemini", "sim-embed")], **e),
        model("emb-inproc", "embeddings", [("inproc", "sim-embed")], **e),
        model("emb-failover", "embeddings", [("dead-openai", "x"), ("sim-gemini", "sim-embed")], **e),
        model("emb-noprice", "embeddings", [("sim-openai", "sim-embed")]),
        model("rr-cohere", "rerank", [("sim-cohere", "rerank-v3")], **r),
        model("rr-inproc", "rerank", [("inproc", "rerank")], **r),
        model("rr-failover", "rerank", [("dead-cohere", "x"), ("sim-cohere", "rerank-v3")], **r),
        model("rr-tokens", "rerank", [("sim-cohere", "rerank-v3")], **e),
        model("rr-noprice", "rerank", [("sim-cohere", "rerank-v3")]),
        model("tts-openai", "speech", [("sim-openai", "sim-tts")], **t),
        model("tts-gemini", "speech", [("sim-gemini", "sim-tts")], **t),
        model("tts-inproc", "speech", [("inproc", "sim-tts")], **t),
        model("tts-failover", "speech", [("dead-openai", "x"), ("sim-openai", "sim-tts")], **t),
        model("stt-openai", "transcription", [("sim-openai", "sim-whisper")], **a),
        model("stt-gemini", "transcription", [("sim-gemini", "sim-stt")], **a),
        model("stt-inproc", "transcription", [("inproc", "sim-stt")], **a),
        model("stt-failover", "transcription", [("dead-gemini", "x"), ("sim-openai", "sim-whisper")], **a),
        model("search-searxng", "search", [("sim-searxng", "general")], **q),
        model("search-tavily", "search", [("sim-tavily", "basic")], **q),
        model("search-inproc", "search", [("inproc", "web")], **q),
        model("search-failover", "search", [("dead-searxng", "x"), ("sim-tavily", "basic")], **q),
        model("ocr-mistral", "ocr", [("sim-mistral", "mistral-ocr-latest")], **pg),
        model("ocr-vision", "ocr", [("sim-openai", "sim-vision")], **pg),
        model("ocr-claude", "ocr", [("sim-anthropic", "sim-vision")], **pg),
        model("ocr-inproc", "ocr", [("inproc", "ocr")], **pg),
        model("stt-noprice", "transcription", [("sim-openai", "sim-whisper")]),
        model("tts-noprice", "speech", [("sim-openai", "sim-tts")]),
        model("search-noprice", "search", [("sim-tavily", "basic")]),
        model("ocr-noprice", "ocr", [("sim-mistral", "mistral-ocr-latest")]),
        model("ocr-failover", "ocr", [("dead-mistral", "x"), ("sim-mistral", "mistral-ocr-latest")], **pg),
    ]
    return {"providers": providers, "models": models, **extra}


def start(tmp: Path, sim: str, **extra) -> harness.Gateway:
    cfg = overrides(tmp, sim, **extra)
    return harness.start_gateway(tmp, sim, providers=cfg.pop("providers"), models=cfg.pop("models"), **cfg)


def last_log(gw, account_id: str):
    db = gw.db()
    try:
        rows = store.request_logs(db, account_id=account_id, limit=1)
        return rows[0] if rows else None
    finally:
        db.close()


def money_ok(gw) -> None:
    db = gw.db()
    try:
        assert store.check_invariants(db) == []
        assert store.open_holds(db) == []
    finally:
        db.close()
