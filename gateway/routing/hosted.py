"""Per-model request shaping after selection: dropped parameters and hosted tools (pure).

Runs once the model and its routes are chosen and before anything is held:

- ``system_messages = "fold"`` (per model): system messages given mid-conversation
  move to the front, in order, for upstream models that refuse them where they stand.
- ``drop_params`` (prism.toml, per model): parameters the model's upstreams reject are
  removed from the request, and the ones the client actually sent are named in
  ``X-Prism-Dropped-Params``.
- Hosted tools (codecs/hosted.py): routes whose upstream runs every hosted tool the
  request carries go first, in their configured order, so failover prefers them too.
  Under the model's ``hosted_tools = "refuse"`` only those routes remain, and none
  remaining is a 400 that says which setting to change; under ``"drop"`` (the default)
  the others stay as later choices, and ``X-Prism-Dropped-Tools`` names what the first
  route will leave out.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from gateway.canonical import Request
from gateway.codecs.hosted import dropped_by, hosted_tools
from gateway.errors import InvalidRequest, UnsupportedGeminiFeature
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
        if names := drops(routes[0]):
            headers["X-Prism-Dropped-Tools"] = ", ".join(dict.fromkeys(names))
    if params:
        headers["X-Prism-Dropped-Params"] = ", ".join(params)
    if routes == selection.routes and headers == selection.headers:
        return req, selection
    return req, dataclasses.replace(selection, routes=routes, headers=headers)


def _refusal(req: Request, selection: Selection, names: list[str]) -> InvalidRequest:
    shown = ", ".join(dict.fromkeys(names))
    message = (f"the {shown} tool is not supported by model {selection.entry.public_id!r}: "
               f"none of its routes' upstreams can run it. Remove the tool, or set "
               f"hosted_tools = \"drop\" on the model in prism.toml to go on without it")
    gemini = {t["name"] for t in hosted_tools(req) if t["family"] == "gemini"}
    if gemini & set(names):
        return UnsupportedGeminiFeature(message, field="tools")
    return InvalidRequest(message, field="tools", code="unsupported_tool")
