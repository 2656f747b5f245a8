"""The one exception tree every error a client can see comes from.

    PrismError                      status  type
    ├── ClientError                 4xx     (the caller can fix it)
    │   ├── InvalidRequest          400     invalid_request
    │   │   ├── InvalidResponseFormatSchema  400  invalid_response_format_schema
    │   │   ├── UnsupportedResponseFormat    400  unsupported_response_format
    │   │   ├── UnsupportedGeminiFeature     400  unsupported_gemini_feature
    │   │   └── MissingModeHeader            400  missing_mode_header  (model "any" without X-Prism-Mode)
    │   ├── BodyTooLarge            413     request_too_large
    │   ├── AuthenticationError     401     invalid_api_key
    │   ├── PermissionDenied        403     permission_denied
    │   │   ├── PlanRestricted      403     plan_restricted    (model/mode outside the plan; code says which)
    │   │   └── FreeTierLimit       403     free_tier_limit    (code names the limit)
    │   ├── IdempotencyKeyReused    422     idempotency_key_reused
    │   ├── IdempotencyInProgress   409     idempotency_in_progress
    │   ├── NotFound                404     not_found
    │   │   └── ModelNotFound       404     model_not_found
    │   ├── InsufficientBalance     402     insufficient_balance
    │   │   └── PriceMissing        402     insufficient_balance (code price_missing)
    │   ├── RateLimited             429     rate_limited       (carries retry_after)
    │   ├── QuotaExceeded           429     quota_exceeded     (a plan window ran out; says when it resets)
    │   ├── WireError               400     protocol_error     (control socket frame; code says which)
    │   └── UpstreamClientError     400     invalid_request    (upstream refused our request)
    ├── SettleFailed                500     internal_error     (settling failed; the hold was voided)
    └── UpstreamError               502     provider_error     (upstream failed us)
        ├── UpstreamAuthFailed      502     provider_error     (upstream refused our credential)
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
                 headers: dict[str, str] | None = None, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.headers: dict[str, str] = dict(headers or {})
        # Operator-only text (the upstream's own words, credentials redacted): it goes
        # to the log and the dashboard, never into a client's answer.
        self.detail = detail
        # Set once the request it belongs to is known; clients quote it to the operator.
        self.request_id: str | None = None

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


class _NamedInvalidRequest(InvalidRequest):
    """A 400 whose source documents give it a name of its own. The message opens with
    that name because Gemini's error body has no type field to carry it; ``code``
    defaults to it for the OpenAI body."""

    def __init__(self, message: str, **kw) -> None:
        if not message.startswith(self.type_name):
            message = f"{self.type_name}: {message}"
        kw.setdefault("code", self.type_name)
        super().__init__(message, **kw)


class InvalidResponseFormatSchema(_NamedInvalidRequest):
    """A structured-output schema that is not valid (codecs/schema.py says where)."""
    type_name = "invalid_response_format_schema"


class UnsupportedResponseFormat(_NamedInvalidRequest):
    """A response format the gateway or the chosen route cannot honour."""
    type_name = "unsupported_response_format"


class UnsupportedGeminiFeature(_NamedInvalidRequest):
    """A Gemini-only feature (built-in tools, ...) asked of a route that is not Gemini."""
    type_name = "unsupported_gemini_feature"


class MissingModeHeader(_NamedInvalidRequest):
    """Smart routing (model "any"/"auto") needs a mode: the header, or the account's default."""
    type_name = "missing_mode_header"


class BodyTooLarge(ClientError):
    status = 413
    type_name = "request_too_large"


class AuthenticationError(ClientError):
    status = 401
    type_name = "invalid_api_key"


class PermissionDenied(ClientError):
    status = 403
    type_name = "permission_denied"


class PlanRestricted(PermissionDenied):
    """The account's plan does not include this model or mode."""
    type_name = "plan_restricted"


class FreeTierLimit(PermissionDenied):
    """A free-plan limit (daily tokens, max_tokens, mode, streaming, session messages);
    ``code`` names which and the message says what to change."""
    type_name = "free_tier_limit"


class IdempotencyKeyReused(ClientError):
    """The Idempotency-Key was used within 24 hours for a different request body."""
    status = 422
    type_name = "idempotency_key_reused"


class IdempotencyInProgress(ClientError):
    """A request with this Idempotency-Key is still running; retry once it has ended."""
    status = 409
    type_name = "idempotency_in_progress"


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


class QuotaExceeded(ClientError):
    """A plan's quota window cannot cover this request and the plan does not fall
    through to the wallet. Retry-After and X-Prism-Quota-Reset say when it resets."""
    status = 429
    type_name = "quota_exceeded"

    def __init__(self, message: str, *, resets_at: float | None = None,
                 retry_after: float | None = None, **kw) -> None:
        super().__init__(message, **kw)
        self.resets_at = resets_at
        if retry_after is not None:
            self.headers.setdefault("Retry-After", str(max(1, int(-(-retry_after // 1)))))


class WireError(ClientError):
    """A control-socket frame that cannot be accepted (garbage, oversized, unknown type,
    malformed fields). ``code`` names which; the connection that sent it is closed."""
    type_name = "protocol_error"


class UpstreamClientError(ClientError):
    """The upstream answered 4xx: the request itself was at fault. Its words stay in
    ``detail`` (they may quote our credential); the client gets the status class."""


class SettleFailed(PrismError):
    """Closing a request's hold failed after the upstream answered; the hold was voided
    instead, so the client gets this error and pays nothing."""


class UpstreamError(PrismError):
    status = 502
    type_name = "provider_error"


class UpstreamTimeout(UpstreamError):
    pass


class UpstreamProtocolError(UpstreamError):
    pass


class UpstreamAuthFailed(UpstreamError):
    """The upstream answered 401/403: the gateway's own credential is wrong. The client
    sees a plain provider_error; a credential rotation rolls back on it."""
