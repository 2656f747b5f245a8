"""Per-model request shaping after selection: dropped parameters and hosted tools (pure).

Runs once the model and its routes are chosen and before anything is held:

- ``system_messages = "fold"`` (per model): system messages given mid-conversation
  move to the front, in order, for upstream models that refuse them where they stand.
  Under the default ``"in_place"`` an upstream that refuses one answers a 400 whose
  words we do not pass on; ``system_refusal`` turns it into the refusal Claude Code
  keys its fallback on (a 400 saying ``role 'system' is not supported``), naming the
  setting that would fold them instead.
- ``drop_params`` (prism.toml, per model): parameters the model's upstreams reject are
  removed from the request, and the ones the client actually sent are named in
  ``X-Prism-Dropped-Params``.
- Hosted tools (codecs/hosted.py): routes whose upstream runs every hosted tool the
  request carries go first, in their configured order, so failover prefers them too.
  Under the model's ``hosted_tools = "refuse"`` only those routes remain, and none
  remaining is a 400 that says which setting to change; under ``"drop"`` (the default)
  the others stay as later choices. ``X-Prism-Dropped-Tools`` names what the route
  that actually served the request left out (``dropped_header``, once dispatch has
  picked it: after failover that is not the first route).
"""
from __future__ import annotations

import dataclasses
import re
from typing import Callable

from gateway.canonical import Request
from gateway.codecs.hosted import dropped_by, hosted_tools
from gateway.errors import InvalidRequest, PrismError, UnsupportedGeminiFeature, UpstreamClientError
from gateway.routing.select import Selection

_EXTRA = ("presence_penalty", "frequency_penalty")


def drop_params(req: Request, names: tuple[str, ...]) -> tuple[Request, list[str]]:
    """``req`` without the named parameters, and which of them it had."""
    changes: dict = {}
    dropped: list[str] = []
    extra = dict(req.metadata.get("openai_extra") or {})
    for name in names:
        if name in _EXTRA:
            if extra.pop(name, None) is not None:
                dropped.append(name)
        elif name == "stop":
            if req.stop:
                changes["stop"] = ()
                dropped.append(name)
        elif getattr(req, name, None) is not None:
            changes[name] = None
            dropped.append(name)
    if len(extra) != len(req.metadata.get("openai_extra") or {}):
        metadata = dict(req.metadata)
        metadata["openai_extra"] = extra
        changes["metadata"] = metadata
    return (dataclasses.replace(req, **changes) if changes else req), dropped


def fold_system(req: Request) -> Request:
    """System messages moved to the front in their order; the turns keep theirs."""
    system = tuple(m for m in req.messages if m.role == "system")
    rest = tuple(m for m in req.messages if m.role != "system")
    if req.messages == system + rest:
        return req
    return dataclasses.replace(req, messages=system + rest)


def mid_conversation_system(req: Request) -> bool:
    """Whether a system message follows a turn of the conversation."""
    seen_turn = False
    for m in req.messages:
        if m.role != "system":
            seen_turn = True
        elif seen_turn:
            return True
    return False


# How upstreams word a refused system message: Anthropic's "role 'system' is not
# supported on this model" and "Unexpected role \"system\"", chat templates' "System
# message must be at the beginning", "Unexpected role 'system' after role 'user'".
_ABOUT_SYSTEM = re.compile(r"\bsystem\b\W{0,3}(role|message|prompt)|role\W{0,3}\bsystem\b", re.I)


def system_refusal(req: object, exc: PrismError, model_id: str) -> InvalidRequest | None:
    """The client's refusal for an upstream 4xx about a mid-conversation system message
    (None when ``exc`` is anything else). The upstream's words stay operator-only."""
    if not isinstance(exc, UpstreamClientError) or not isinstance(req, Request):
        return None
    if not mid_conversation_system(req) or not _ABOUT_SYSTEM.search(exc.detail or exc.message):
        return None
    refusal = InvalidRequest(
        f"role 'system' is not supported in the middle of the conversation by model "
        f"{model_id!r}: its upstream accepts system messages only before the first turn. "
        f"Send them there, or set system_messages = \"fold\" on the model in prism.toml "
        f"to have the gateway move them", field="messages", code="unsupported_system_role",
        detail=exc.detail or exc.message)
    refusal.request_id = exc.request_id
    return refusal


def shape(req: Request, selection: Selection,
          kind_of: Callable[[object], str | None]) -> tuple[Request, Selection]:
    """Apply the selected model's drop_params and hosted_tools policy. ``kind_of`` gives
    a route's provider kind (None when unknown: such a route is judged to keep all)."""
    model = selection.entry.model
    req, params = drop_params(req, model.drop_params)
    if model.system_messages == "fold":
        req = fold_system(req)
    headers = dict(selection.headers)
    routes = selection.routes
    if hosted_tools(req):
        def drops(route) -> list[str]:
            kind = kind_of(route)
            return [] if kind is None else dropped_by(req, kind)

        keeping = tuple(r for r in routes if not drops(r))
        if model.hosted_tools == "refuse":
            if not keeping:
                raise _refusal(req, selection, drops(routes[0]))
            routes = keeping
        else:
            routes = keeping + tuple(r for r in routes if drops(r))
    if params:
        headers["X-Prism-Dropped-Params"] = ", ".join(params)
    if routes == selection.routes and headers == selection.headers:
        return req, selection
    return req, dataclasses.replace(selection, routes=routes, headers=headers)


DROPPED_TOOLS = "X-Prism-Dropped-Tools"


def dropped_header(req: object, kind: str | None) -> str | None:
    """The X-Prism-Dropped-Tools value for ``req`` served by a route of provider kind
    ``kind`` (None: nothing dropped, or an unknown kind, judged to keep all)."""
    if kind is None or not isinstance(req, Request):
        return None
    names = dropped_by(req, kind)
    return ", ".join(dict.fromkeys(names)) if names else None


def _refusal(req: Request, selection: Selection, names: list[str]) -> InvalidRequest:
    shown = ", ".join(dict.fromkeys(names))
    message = (f"the {shown} tool is not supported by model {selection.entry.public_id!r}: "
               f"none of its routes' upstreams can run it. Remove the tool, or set "
               f"hosted_tools = \"drop\" on the model in prism.toml to go on without it")
    gemini = {t["name"] for t in hosted_tools(req) if t["family"] == "gemini"}
    if gemini & set(names):
        return UnsupportedGeminiFeature(message, field="tools")
    return InvalidRequest(message, field="tools", code="unsupported_tool")
