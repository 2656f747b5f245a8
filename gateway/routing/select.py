"""Which model serves a request, and through which routes in which order (pure).

select() turns the client's model name into a Selection: the catalog entry, its
enabled routes in failover order, and what the response headers should say about the
choice. Refusals that need no upstream call happen here: unknown or disabled model,
missing capability, no price, max_tokens above the model's cap.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from gateway import canonical as c
from gateway import errors
from gateway.config import RouteConfig
from gateway.routing.catalog import Catalog, Entry


@dataclass(frozen=True)
class Selection:
    entry: Entry
    routes: tuple[RouteConfig, ...]
    task_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.routes:
            raise ValueError("a Selection needs at least one route")


def select(catalog: Catalog, req: c.Request, capability: str = "chat") -> Selection:
    entry = catalog.resolve(req.model)
    model = entry.model
    if capability not in model.capabilities:
        raise errors.InvalidRequest(f"The model {req.model!r} does not support {capability}",
                                    field="model")
    if entry.price is None:
        raise errors.PriceMissing(f"The model {req.model!r} has no token price configured; "
                                  f"the gateway refuses to serve it unbilled", code="price_missing")
    if req.max_tokens is not None and req.max_tokens > model.max_output_tokens:
        raise errors.InvalidRequest(
            f"max_tokens is {req.max_tokens}, above the model's output limit of "
            f"{model.max_output_tokens}", field="max_tokens")
    return Selection(entry, catalog.routes(model))
