"""The closed set of operation kinds the engine serves, and how each is held and priced.

Every operation goes the same way through the engine (engine/pipeline.Pipeline):
select a model that has the operation's capability, refuse (402) a model without the
operation's price before any upstream call, admit (rate limits, plan windows, wallet
hold, request-log record), dispatch over the model's routes (order, breakers,
fails_over, per-attempt deadline, failover before the first byte), and close (settle
or void, shielded, exactly once). An operation only describes what differs.

Adding one (say, embeddings) takes four pieces and nothing else:

    # 1. codec:    parse the request body into a value, encode the result (codecs/).
    # 2. provider: a method that makes the call on one route's upstream, e.g.
    #              `async def embed(self, req, upstream_model) -> EmbedResult` (providers/).
    # 3. operation (here or next to the codec):
    EMBEDDINGS = Operation(
        kind="embeddings", capability="embeddings",
        pricing=Pricing.units("embedding_usd_per_mtok", per=1_000_000),
        hold_units=lambda req: req.token_estimate,          # the worst case, from the request
        units_of=lambda res: res.tokens,                    # what is billed, from the result
        call=lambda up, req, route: up.provider.embed(req, route.model))
    # 4. route:    ctx = await common.authenticate(...); req = codec.parse(body)
    #              result, outcome = await engine.unary(ctx, EMBEDDINGS, req, model=req.model)
    #              return framer.json(codec.encode(result), outcome)

The price named by Pricing lives on the model in prism.toml (ModelConfig attribute).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Generic, Literal, TypeVar, get_args

from gateway import errors
from gateway.billing.pricing import usd_to_micros
from gateway.config import ModelConfig, RouteConfig

Kind = Literal["chat", "embeddings", "rerank", "speech", "transcription", "image", "video",
               "search", "ocr", "realtime", "mcp", "a2a"]
KINDS: frozenset[str] = frozenset(get_args(Kind))
Basis = Literal["tokens", "units", "request", "micros"]

Req = TypeVar("Req")
Res = TypeVar("Res")


@dataclass(frozen=True)
class Pricing:
    """How a result is priced: by tokens in/out (the model's per-million-token prices),
    by units (`price` names a ModelConfig attribute in USD per `per` units), one
    fixed price per request (`price` names the attribute), or by micro-USD the
    operation computed itself (`micros`: a realtime response priced per token kind, an
    MCP tool or a remote agent with a price of its own; its units are micro-USD)."""
    basis: Basis
    price: str | None = None
    unit: str = ""
    per: int = 1

    def __post_init__(self) -> None:
        if (self.basis in ("tokens", "micros")) != (self.price is None):
            raise ValueError("token pricing uses the model's token prices; others name one")
        if self.per < 1:
            raise ValueError("per must be positive")

    @staticmethod
    def tokens() -> "Pricing":
        return Pricing("tokens")

    @staticmethod
    def units(price: str, unit: str = "unit", per: int = 1) -> "Pricing":
        return Pricing("units", price, unit, per)

    @staticmethod
    def per_request(price: str) -> "Pricing":
        return Pricing("request", price, "request")

    @staticmethod
    def micros() -> "Pricing":
        return Pricing("micros", unit="micro-USD")

    def cost_micros(self, model: ModelConfig | None, units: int) -> int | None:
        """What `units` cost on this model, integer micro-USD; None: no price set."""
        if self.basis == "micros":
            return units
        usd = getattr(model, self.price or "", None)
        if usd is None:
            return None
        n = 1 if self.basis == "request" else units
        return -(-usd_to_micros(usd) * n // self.per)   # round up: never under-bill


@dataclass(frozen=True)
class Upstream:
    """What an operation's call gets for one route: the route's chat provider and,
    where its kind has one, its media client (None otherwise)."""
    provider: Any
    media: Any = None


@dataclass(frozen=True)
class Operation(Generic[Req, Res]):
    kind: Kind
    capability: str
    pricing: Pricing
    # The provider method: make the call on one route (dispatch wraps it with the
    # route's breaker and deadline, and tries the next route on a route failure).
    call: Callable[[Upstream, Req, RouteConfig], Awaitable[Res]] | None = None
    # Worst-case units from the request (what is held) and billed units from the result.
    hold_units: Callable[[Req], int] = lambda req: 1
    units_of: Callable[[Res], int] = lambda res: 1
    # Tokens the rate limiter's token limits (TPM) charge at admission, for an
    # operation that is not token-priced but still spends tokens (a realtime response);
    # None: only the request limits (RPM) apply. Corrected at close from the usage.
    rate_tokens: Callable[[Req], int | None] = lambda req: None
    # Token counts a unit-priced result reports (embeddings' input tokens), for the
    # request log and X-Prism-Tokens-*; they never change the price.
    usage_of: Callable[[Res], Any] = lambda res: None
    # A human name for what is made, in refusals ("image generation").
    noun: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown operation kind {self.kind!r}")

    def unit_price(self, entry: Any) -> int:
        """Refuse (402) a model without this operation's price, before any upstream call."""
        if self.pricing.basis == "micros":
            return 0        # priced by the operation itself, which checked its own prices
        if self.pricing.basis == "tokens":
            if entry.price is None:
                raise errors.PriceMissing(
                    f"The model {entry.public_id!r} has no token price configured; the "
                    f"gateway refuses to serve it unbilled", code="price_missing")
            return 0
        cost = self.pricing.cost_micros(entry.model, 1)
        if cost is None:
            raise errors.PriceMissing(
                f"The model {entry.public_id!r} has no {self.pricing.price} price configured; "
                f"the gateway refuses to {self.noun or self.kind} unbilled",
                code="price_missing")
        return cost

    def hold_micros(self, entry: Any, req: Req) -> int:
        cost = self.pricing.cost_micros(entry.model if entry is not None else None,
                                        self.hold_units(req))
        return cost or 0


CHAT: Operation[Any, Any] = Operation(kind="chat", capability="chat", pricing=Pricing.tokens())
