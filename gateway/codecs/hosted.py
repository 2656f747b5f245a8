"""Hosted tools: tools the upstream vendor runs itself (web search, code execution, ...).

A client declares them in its own dialect: Responses ``web_search`` / ``file_search`` /
``code_interpreter`` / ``image_generation`` / ``computer_use_preview`` ..., Anthropic
server and Anthropic-defined tools (``web_search_20250305``, ``code_execution_*``,
``bash_*`` ...), Gemini ``googleSearch`` / ``codeExecution`` / ``urlContext`` .... None has
a canonical meaning, so each decoder records them in ``Request.metadata`` and the
encoder of the vendor that runs them puts them back unchanged; every other encoder
leaves them out. Which routes keep them, and whether a route that cannot is used at
all, is routing's call (routing/hosted.py, per the model's ``hosted_tools`` policy).

Shapes: ``metadata["hosted_tools"]`` is a list of ``{"family", "name", "spec"}`` with
``spec`` the tool object exactly as the client sent it; Gemini's built-in tools stay
in ``metadata["gemini_native"]`` ({feature: config}, what the Gemini encoder writes)
and are listed by ``hosted_tools`` all the same. Pure: no I/O.
"""
from __future__ import annotations

from typing import Any

from gateway.canonical import Request

KEY = "hosted_tools"
# Which provider kinds run a family's tools natively. The simulator stands in for a
# Gemini upstream (it has always accepted Gemini's built-in tools); OpenAI-kind
# providers run the Responses family only when they speak the Responses API
# (``api = "responses"``, which routing reports as kind "openai_responses"): Chat
# Completions has no hosted tools.
NATIVE_KINDS: dict[str, frozenset[str]] = {
    "openai": frozenset({"openai_responses"}),
    "anthropic": frozenset({"anthropic"}),
    "gemini": frozenset({"gemini", "simulator"}),
}


def hosted_tool(family: str, name: str, spec: dict) -> dict[str, Any]:
    return {"family": family, "name": name, "spec": spec}


def hosted_tools(req: Request) -> list[dict[str, Any]]:
    """Every hosted tool ``req`` carries, in declaration order per family."""
    out = [t for t in req.metadata.get(KEY) or () if isinstance(t, dict)]
    native = req.metadata.get("gemini_native")
    if isinstance(native, dict):
        out += [hosted_tool("gemini", name, {name: spec}) for name, spec in native.items()]
    return out


def specs(req: Request, family: str) -> list[dict]:
    """The tool objects of one family, as the client sent them (for that vendor's encoder)."""
    return [t["spec"] for t in req.metadata.get(KEY) or ()
            if isinstance(t, dict) and t.get("family") == family and isinstance(t.get("spec"), dict)]


def keeps(family: str, provider_kind: str) -> bool:
    return provider_kind in NATIVE_KINDS.get(family, frozenset())


def dropped_by(req: Request, provider_kind: str) -> list[str]:
    """Names of the hosted tools a route of ``provider_kind`` would leave out."""
    return [t["name"] for t in hosted_tools(req) if not keeps(t["family"], provider_kind)]
