"""A gateway config with image and video models, routed to the HTTP simulator."""
from __future__ import annotations

import base64
import struct
import time
import zlib
from pathlib import Path

import httpx

import harness
import store

IMAGE_USD = 0.04
VIDEO_USD = 0.5


def media_overrides(tmp: Path, sim_url: str, **media) -> dict:
    base = harness.gateway_config(tmp, sim_url)
    providers = base["providers"] + [
        {"id": "sim-media", "kind": "openai", "base_url": sim_url + "/v1",
         "api_key_env": "PRISM_TEST_UPSTREAM_KEY", "images": True, "video": True},
        {"id": "sim-noflag", "kind": "openai", "base_url": sim_url + "/v1",
         "api_key_env": "PRISM_TEST_UPSTREAM_KEY", "images": False, "video": False},
        {"id": "inproc", "kind": "simulator", "images": True, "video": True},
        {"id": "claude", "kind": "anthropic", "base_url": sim_url, "images": True},
    ]
    models = base["models"] + [
        {"id": "img", "image_usd": IMAGE_USD, "capabilities": ["images"],
         "routes": [{"provider": "sim-media", "model": "sim-image-1"}]},
        {"id": "img-noprice", "capabilities": ["images"],
         "routes": [{"provider": "sim-media", "model": "sim-image-1"}]},
        {"id": "img-flagoff", "image_usd": IMAGE_USD, "capabilities": ["images"],
         "routes": [{"provider": "sim-noflag", "model": "sim-image-1"}]},
        {"id": "img-inproc", "image_usd": IMAGE_USD, "capabilities": ["images"],
         "routes": [{"provider": "inproc", "model": "sim-image"}]},
        {"id": "img-claude", "image_usd": IMAGE_USD, "capabilities": ["images"],
         "routes": [{"provider": "claude", "model": "claude-x"}]},
        {"id": "vid", "video_usd": VIDEO_USD, "capabilities": ["video"],
         "routes": [{"provider": "sim-media", "model": "sim-video-1"}]},
        {"id": "vid-inproc", "video_usd": VIDEO_USD, "capabilities": ["video"],
         "routes": [{"provider": "inproc", "model": "sim-video"}]},
        {"id": "vid-flagoff", "video_usd": VIDEO_USD, "capabilities": ["video"],
         "routes": [{"provider": "sim-noflag", "model": "sim-video-1"}]},
        {"id": "vid-noprice", "capabilities": ["video"],
         "routes": [{"provider": "sim-media", "model": "sim-video-1"}]},
    ]
    return {"providers": providers, "models": models,
            "media": {"video_poll_interval": 0.1, **media}}


def start(tmp: Path, sim_url: str, **media) -> harness.Gateway:
    return harness.start_gateway(tmp, sim_url, **media_overrides(tmp, sim_url, **media))


def sim_stats(sim_url: str) -> dict:
    return httpx.get(sim_url + "/_sim/stats").json()


def wallet(gw, account_id: str) -> int:
    db = gw.db()
    try:
        return store.get_wallet(db, account_id).balance_micros
    finally:
        db.close()


def invariants(gw) -> list:
    db = gw.db()
    try:
        return store.check_invariants(db)
    finally:
        db.close()


def open_holds(gw) -> list:
    db = gw.db()
    try:
        return store.open_holds(db)
    finally:
        db.close()


def ledger(gw, account_id: str) -> list:
    db = gw.db()
    try:
        return store.ledger_rows(db, account_id)
    finally:
        db.close()


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    w, h = struct.unpack(">II", data[16:24])
    crc = struct.unpack(">I", data[29:33])[0]
    assert crc == zlib.crc32(data[12:29])
    return w, h


def b64png(s: str) -> bytes:
    return base64.b64decode(s)


def wait_for(fn, timeout: float = 15.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(step)
