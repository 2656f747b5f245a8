"""The async side of model selection: what routing/select needs that takes I/O.

routing/select is pure and decides from the catalog, the request, a mode, a pin and
a plan's model set. This module gathers those: the X-Prism-* hints parsed onto the
CallContext, and, only when model "any"/"auto" arrives without X-Prism-Mode, the
caller's account default mode (one store read), then [routing] default_mode from
prism.toml. Explicit model names never cost a read.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import store
from gateway import canonical as c
from gateway.routing.hints import NO_HINTS
from gateway.routing.select import AUTO_MODELS, Selection, check_allowed, select

if TYPE_CHECKING:
    from gateway.engine.call import CallContext
    from gateway.engine.live import Live


class Router:
    def __init__(self, live: "Live", writer: Any) -> None:
        self.live = live
        self.writer = writer

    async def default_mode(self, ctx: "CallContext") -> str | None:
        """The account's default mode, else the gateway's, else None (-> 400)."""
        if ctx.account_id:
            account = await self.writer.call(store.get_account, ctx.account_id)
            if account is not None and account.default_mode:
                return account.default_mode
        return self.live.config.routing.default_mode or None

    async def select(self, ctx: "CallContext", req: c.Request, capability: str = "chat") -> Selection:
        hints = ctx.hints or NO_HINTS
        mode = hints.mode
        if mode is None and req.model in AUTO_MODELS:
            mode = await self.default_mode(ctx)
        return select(self.live.catalog, req, capability, mode=mode, prefer=hints.prefer,
                      allowed=ctx.allowed_models)

    def select_for(self, ctx: "CallContext", op: "Operation", model: str) -> Selection:
        """The named model and its routes for a non-chat operation (404 unknown, 403
        outside the plan). Capability and route checks are the caller's RouteCheck, so
        each operation can say precisely why a model cannot serve it."""
        entry = self.live.catalog.resolve(model)
        check_allowed(entry, ctx.allowed_models, "The model")
        return Selection(entry, self.live.catalog.routes(entry.model), reason="named by the client")
