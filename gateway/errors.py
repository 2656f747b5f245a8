"""The one exception tree every error a client can see comes from.

    PrismError                      status  type
    ├── ClientError                 4xx     (the caller can fix it)
    │   ├── InvalidRequest          400     invalid_request
    │   ├── BodyTooLarge            413     request_too_large
    │   ├── AuthenticationError     401     invalid_api_key
    │   ├── PermissionDenied        403     permission_denied
    │   ├── NotFound                404     not_found
    │   │   └── ModelNotFound       404     model_not_found
    │   ├── InsufficientBalance     402     insufficient_balance
    │   │   └── PriceMissing        402     insufficient_balance (code price_missing)
    │   ├── RateLimited             429     rate_limited       (carries retry_after)
    │   ├── WireError               400     protocol_error     (control socket frame; code says which)
    │   └── UpstreamClientError     400     invalid_request    (upstream refused our request)
    └── UpstreamError               502     provider_error     (upstream failed us)
        ├── UpstreamTimeout         502     provider_error
        └── UpstreamProtocolError   502     provider_error     (upstream spoke nonsense)

Foreign exceptions (httpx, json, peewee) are mapped to these at one boundary each:
providers/ for httpx, the http layer for request bodies, store/ for the database.
Rendering into a dialect's body shape lives with that dialect's blueprint.
"""
from __future__ import annotations


class PrismError(Exception):
    status: int = 500
    type_name: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.headers: dict[str, str] = dict(headers or {})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class ClientError(PrismError):
    status = 400
    type_name = "invalid_request"


class InvalidRequest(ClientError):
    """Malformed body or parameter; the message names the field."""

    def __init__(self, message: str, *, field: str | None = None, **kw) -> None:
        super().__init__(message, **kw)
        self.field = field


class BodyTooLarge(ClientError):
    status = 413
    type_name = "request_too_large"


class AuthenticationError(ClientError):
    status = 401
    type_name = "invalid_api_key"


class PermissionDenied(ClientError):
    status = 403
    type_name = "permission_denied"


class NotFound(ClientError):
    status = 404
    type_name = "not_found"


class ModelNotFound(NotFound):
    type_name = "model_not_found"


class InsufficientBalance(ClientError):
    status = 402
    type_name = "insufficient_balance"


class PriceMissing(InsufficientBalance):
    """A model with no price is refused, never served free."""


class RateLimited(ClientError):
    status = 429
    type_name = "rate_limited"

    def __init__(self, message: str, *, retry_after: float | None = None, **kw) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after
        if retry_after is not None:
            # Retry-After is whole seconds; round up so a client never retries early.
            self.headers.setdefault("Retry-After", str(max(1, int(-(-retry_after // 1)))))


class WireError(ClientError):
    """A control-socket frame that cannot be accepted (garbage, oversized, unknown type,
    malformed fields). ``code`` names which; the connection that sent it is closed."""
    type_name = "protocol_error"


class UpstreamClientError(ClientError):
    """The upstream answered 4xx: the request itself was at fault, pass its message on."""


class UpstreamError(PrismError):
    status = 502
    type_name = "provider_error"


class UpstreamTimeout(UpstreamError):
    pass


class UpstreamProtocolError(UpstreamError):
    pass
