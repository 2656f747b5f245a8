"""A gateway for the resources tests: the harness's models plus an embeddings model,
which vector stores embed with (billed through the engine like POST /v1/embeddings)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import harness

EMBED_MODEL = {"id": "prism-embed", "input_usd_per_mtok": 1.0, "capabilities": ["embeddings"],
               "routes": [{"provider": "up", "model": "sim-embed"}]}


def start(tmp: Path, sim_url: str | None, *, upstream_kinds=(), **overrides: Any) -> harness.Gateway:
    models = harness.gateway_config(tmp, sim_url, upstream_kinds=upstream_kinds)["models"]
    return harness.start_gateway(tmp, sim_url, upstream_kinds=upstream_kinds,
                                 models=[*models, EMBED_MODEL], **overrides)
