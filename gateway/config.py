"""prism.toml -> frozen dataclasses, validated with messages that name the key.

Every section is a dataclass; its fields are the only keys allowed. Validation is
table-driven from the dataclass annotations so a new option is one field, not a new
`if`. Cross-references (a model route naming a provider, an alias colliding with another
model's id) are checked after the shapes. Any problem raises ConfigError listing every
problem found, each prefixed by its key path (``models[1].routes[0].provider``).
"""
from __future__ import annotations

import dataclasses
import math
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from gateway.config_protocols import (A2AConfig, AgentConfig, McpServerConfig, RealtimeConfig,
                                      check_protocols)

# cohere, searxng, tavily and mistral serve one non-chat operation each (rerank,
# search, search, OCR): see gateway/providers/inference.py.
PROVIDER_KINDS = ("openai", "anthropic", "gemini", "simulator", "cohere", "searxng", "tavily", "mistral")
TIERS = ("eco", "balanced", "sport")
CAPABILITIES = ("chat", "tools", "vision", "json", "images", "video", "long_context",
                "embeddings", "rerank", "speech", "transcription", "search", "ocr", "realtime")

MODES = ("eco", "balanced", "sport")
TASK_TYPES = ("simple", "code", "reasoning", "complex")
PICKS = ("cheapest", "best")


class ConfigError(Exception):
    def __init__(self, problems: list[str], source: str = "prism.toml") -> None:
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 10 * 1024 * 1024
    read_timeout: float = 60.0          # hypercorn: idle read on a connection
    keep_alive_timeout: float = 15.0
    shutdown_grace: float = 10.0        # drain in-flight streams this long on stop
    workers: int = 1                    # processes sharing the port (`prism serve --workers`)
    max_request_seconds: float = 600.0  # a whole request, upstream included
    # listen() backlog: connections the kernel queues before the gateway accepts them.
    # hypercorn's 100 resets a burst of a few hundred simultaneous clients; Linux caps
    # the value at net.core.somaxconn (4096 on kernels >= 5.4, 128 before).
    backlog: int = 4096
    # Connections served at once; more are closed as they are accepted.
    max_connections: int = 16384
    # Plain HTTP/1.1 requests through the lean front (gateway/http/front.py); false
    # leaves every connection to hypercorn's own protocol stack.
    fast_http1: bool = True


@dataclass(frozen=True)
class StoreConfig:
    path: str = "prism.db"
    # "sqlite:///file" or "postgresql://user@host/db"; empty means the SQLite file at
    # `path`. Several processes (`--workers`, several machines) share one store here.
    url: str = ""
    pool_size: int = 4                  # PostgreSQL connections (threads) per process
    hold_ttl_seconds: int = 900         # an open hold older than this is an orphan
    sweep_interval: float = 60.0
    key_cache_ttl: float = 60.0         # bounds how stale a key revoked by another process can be


@dataclass(frozen=True)
class CacheConfig:
    # "redis://host:6379/0": rate limits shared by every process through Redis. Empty:
    # one process keeps them in memory, several keep them in the store.
    url: str = ""
    prefix: str = "prism:"              # every Redis key Prism writes starts with this


@dataclass(frozen=True)
class ControlConfig:
    socket: str = "prism.sock"
    event_buffer: int = 256             # live events queued per dashboard before dropping


@dataclass(frozen=True)
class BootstrapConfig:
    dev_key: bool = True
    dev_key_credits_usd: float = 5.0


@dataclass(frozen=True)
class ProviderConfig:
    id: str
    kind: str
    base_url: str = ""
    api_key_env: str = ""
    enabled: bool = True
    images: bool = False
    video: bool = False
    connect_timeout: float = 5.0
    read_timeout: float = 120.0
    max_connections: int = 100
    # simulator only: how it streams
    chunk_chars: int = 8
    chunk_delay: float = 0.0
    # openai only: the upstream API chat goes to. "responses" (/v1/responses) receives
    # a client's Responses hosted tools (web_search, ...) unchanged; "chat" drops them.
    api: str = "chat"
    # openai | anthropic | gemini: batch lines whose route starts here go to the
    # upstream's own batch API (gateway/jobs/native.py) instead of one call each.
    native_batch: bool = False


@dataclass(frozen=True)
class RouteConfig:
    provider: str
    model: str


@dataclass(frozen=True)
class ShadowConfig:
    """A model's shadow (engine.shadow): another model entry that a sample of this
    model's requests is sent to as well, after the client's answer, billed to the
    operator account."""
    model: str
    sample_rate: float = 0.0


DROPPABLE_PARAMS = ("temperature", "top_p", "top_k", "seed", "stop", "presence_penalty",
                    "frequency_penalty", "parallel_tool_calls", "user")


@dataclass(frozen=True)
class ModelConfig:
    id: str
    routes: tuple[RouteConfig, ...]
    aliases: tuple[str, ...] = ()
    tier: str = "balanced"
    enabled: bool = True
    input_usd_per_mtok: float | None = None
    output_usd_per_mtok: float | None = None
    cached_input_usd_per_mtok: float | None = None
    # Realtime audio tokens (gateway/realtime); unset means the text token prices.
    audio_input_usd_per_mtok: float | None = None
    audio_output_usd_per_mtok: float | None = None
    image_usd: float | None = None
    video_usd: float | None = None
    # Non-chat operations (embeddings use input_usd_per_mtok; token counting is free).
    search_usd: float | None = None             # rerank: per search (query + up to 100 docs)
    request_usd: float | None = None            # web search: per request
    speech_usd_per_mchar: float | None = None   # speech: per million input characters
    audio_usd_per_minute: float | None = None   # transcription/translation: per minute of audio
    page_usd: float | None = None               # OCR: per page processed
    max_output_tokens: int = 4096
    context_window: int = 128000
    capabilities: tuple[str, ...] = ("chat",)
    owned_by: str = "prism"
    # Request parameters this model's upstreams reject; removed before the call and
    # named in X-Prism-Dropped-Params (Gemini CLI always sends temperature and top_p).
    drop_params: tuple[str, ...] = ()
    # A hosted tool (web search, code execution, ...) on a route whose upstream cannot
    # run it: "drop" goes on without it (X-Prism-Dropped-Tools), "refuse" answers 400.
    hosted_tools: str = "drop"
    # "fold" moves system messages given mid-conversation to the front, in order, for
    # upstream models that refuse them where they stand; "in_place" keeps them there.
    system_messages: str = "in_place"
    shadow: ShadowConfig | None = None


@dataclass(frozen=True)
class PlanConfig:
    """A subscription: quota windows that pay for requests before the wallet does, and
    what the plan may use. Windows are rolling (5h, 7d) or daily (resetting at
    daily_reset_hour UTC); the daily token caps use the daily period too. Limits left
    unset do not apply. Rate limits left unset fall back to [limits]."""
    id: str
    window_5h_usd: float | None = None
    window_7d_usd: float | None = None
    daily_usd: float | None = None
    daily_reset_hour: int = 0
    fallthrough_to_wallet: bool = True
    models: tuple[str, ...] = ()
    modes: tuple[str, ...] = ()
    # A free plan: its refusals say free_tier_limit and name the limit.
    free: bool = False
    daily_input_tokens: int | None = None
    daily_output_tokens: int | None = None
    max_tokens: int | None = None          # cap on a request's max_tokens (and its default)
    streaming: bool = True
    session_messages: int | None = None    # messages per session (routing counts them)
    key_rpm: int | None = None
    key_tpm: int | None = None
    account_rpm: int | None = None
    account_tpm: int | None = None
    # MCP tools the plan's keys may list and call (names or `server__*` patterns);
    # empty means every tool.
    mcp_tools: tuple[str, ...] = ()


@dataclass(frozen=True)
class LimitsConfig:
    """Default rate limits (GCRA), per API key and per account, in requests and tokens
    per minute; 0 means no limit. Plans override them one by one. A request's tokens
    are its prompt plus its max output, corrected to the real usage when it ends.
    The burst is how much may arrive at once: by default one minute's worth."""
    key_rpm: int = 0
    key_tpm: int = 0
    account_rpm: int = 0
    account_tpm: int = 0
    burst_seconds: float = 60.0


@dataclass(frozen=True)
class ModeRuleConfig:
    """How one mode picks a model for `model: "any"`. Empty means the built-in default
    for that mode (gateway.routing.modes.DEFAULT_RULES), so a file may override one key."""
    pick: str = ""        # cheapest | best
    simple: str = ""      # per task type: the lowest tier allowed (the quality floor)
    code: str = ""
    reasoning: str = ""
    complex: str = ""


@dataclass(frozen=True)
class RoutingConfig:
    default_mode: str = ""               # for auto routing without X-Prism-Mode; "" = 400
    eco: ModeRuleConfig = field(default_factory=ModeRuleConfig)
    balanced: ModeRuleConfig = field(default_factory=ModeRuleConfig)
    sport: ModeRuleConfig = field(default_factory=ModeRuleConfig)
    breaker_failures: int = 5            # consecutive failures that open a route's breaker
    breaker_cooldown: float = 30.0       # seconds open before one probe is let through
    session_ttl: float = 1800.0          # sliding: every use pushes expiry this far out
    session_max_messages: int = 100
    session_compact_at: int = 90         # condense the oldest into a summary at this count
    session_keep_messages: int = 20      # the most recent kept verbatim by a compaction


@dataclass(frozen=True)
class MediaConfig:
    """Images and video (gateway/media): reference-image fetching and the video poller.
    allow_private_hosts lets the gateway fetch image_url from loopback and private
    addresses (never cloud metadata); off by default because that is an SSRF hole."""
    allow_private_hosts: bool = False
    fetch_max_bytes: int = 10 * 1024 * 1024
    fetch_timeout: float = 10.0
    fetch_max_redirects: int = 3
    video_poll_interval: float = 2.0
    video_max_bytes: int = 200 * 1024 * 1024


@dataclass(frozen=True)
class InferenceConfig:
    """Limits of the non-chat inference routes (gateway/inference): uploads answer 413
    over upload_max_bytes; rerank refuses more than max_documents."""
    upload_max_bytes: int = 25 * 1024 * 1024
    max_documents: int = 1000
    ocr_max_pages: int = 1000


@dataclass(frozen=True)
class JobsConfig:
    """The durable job runner (gateway/jobs): async, scheduled and batch completions.
    Leases lapse after lease_seconds without a heartbeat, and another runner takes the
    job over; batch lines are charged batch_price_multiplier of the list price."""
    poll_interval: float = 1.0
    lease_seconds: float = 30.0
    max_attempts: int = 3
    retry_base_seconds: float = 2.0
    async_concurrency: int = 8
    scheduled_concurrency: int = 4
    batch_concurrency: int = 2
    video_concurrency: int = 64          # videos being polled at once
    batch_line_concurrency: int = 8
    batch_price_multiplier: float = 0.5
    batch_max_lines: int = 50_000
    batch_max_bytes: int = 100 * 1024 * 1024
    result_ttl_seconds: float = 86_400.0
    sweep_interval: float = 60.0         # how often ended jobs past their ttl are dropped
    max_queued_per_account: int = 1000
    webhook_timeout: float = 10.0
    webhook_max_attempts: int = 5
    webhook_allow_private: bool = False
    native_poll_interval: float = 30.0   # seconds between polls of an upstream batch


@dataclass(frozen=True)
class ResourcesConfig:
    """Files, vector stores and assistants (gateway/resources). Blobs live in
    `blob_dir` (beside the store when relative); uploads over max_file_bytes get 413
    and an account holding storage_bytes_per_account already gets 403. The embedding
    model (a prism.toml model with the embeddings capability and its price) embeds
    vector-store chunks and search queries through the engine's embeddings operation,
    billed to the store's owner like any POST /v1/embeddings."""
    blob_dir: str = "prism-blobs"
    index_dir: str = "prism-vectors"
    max_file_bytes: int = 512 * 1024 * 1024
    storage_bytes_per_account: int = 10 * 1024 * 1024 * 1024
    embedding_model: str = "prism-embed"
    sweep_interval: float = 60.0
    run_max_steps: int = 8


@dataclass(frozen=True)
class MarkupConfig:
    """Percent added to the model price of a request routed by mode (model "any" or
    "auto" with X-Prism-Mode); 0 means none. Part of the hold and of the settled cost."""
    eco: float = 0.0
    balanced: float = 0.0
    sport: float = 0.0

    def basis_points(self, mode: str | None) -> int:
        return round(getattr(self, mode) * 100) if mode in MODES else 0


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    providers: tuple[ProviderConfig, ...] = ()
    models: tuple[ModelConfig, ...] = ()
    plans: tuple[PlanConfig, ...] = ()
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    mcp_servers: tuple[McpServerConfig, ...] = ()
    agents: tuple[AgentConfig, ...] = ()
    realtime: RealtimeConfig = field(default_factory=RealtimeConfig)
    a2a: A2AConfig = field(default_factory=A2AConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    jobs: JobsConfig = field(default_factory=JobsConfig)
    markups: MarkupConfig = field(default_factory=MarkupConfig)
    base_dir: str = "."   # relative paths in the file resolve against the file's folder

    def provider(self, provider_id: str) -> ProviderConfig:
        for p in self.providers:
            if p.id == provider_id:
                return p
        raise KeyError(provider_id)

    def store_target(self) -> str:
        """What store.open_database takes: a PostgreSQL URL or a resolved SQLite path."""
        url = self.store.url
        if url.startswith(("postgresql://", "postgres://")):
            return url
        if url.startswith("sqlite:///"):
            return self.resolve_path(url[len("sqlite:///"):])
        return self.resolve_path(self.store.path)

    def resolve_path(self, p: str) -> str:
        return p if os.path.isabs(p) else os.path.join(self.base_dir, p)


# ---------------------------------------------------------------- shape checking

_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is tuple:
        return f"an array of {_describe(typing.get_args(tp)[0])}"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp) if a is not type(None))
    if dataclasses.is_dataclass(tp):
        return "a table"
    return _TYPE_NAMES.get(tp, str(tp))


def _convert(value: Any, tp: Any, path: str, problems: list[str]) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _convert(value, args[0], path, problems)
    if origin is dict:
        # String-to-string tables only (environment, headers).
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            problems.append(f"{path}: expected a table of strings, got {value!r}")
            return {}
        return dict(value)
    if origin is tuple:
        inner = typing.get_args(tp)[0]
        if not isinstance(value, list):
            problems.append(f"{path}: expected {_describe(tp)}, got {type(value).__name__}")
            return ()
        return tuple(_convert(v, inner, f"{path}[{i}]", problems) for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a table, got {type(value).__name__}")
            return None
        return _build(tp, value, path, problems)
    if tp is float:
        # TOML allows nan and inf; no setting means either, and a nan price or timeout
        # would slip past every `< 0` check below and fail at start-up or per request.
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        if isinstance(value, float):
            problems.append(f"{path}: expected a finite number, got {value!r}")
            return None
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(value, tp):
        return value
    problems.append(f"{path}: expected {_describe(tp)}, got {type(value).__name__} {value!r}")
    return None


def _build(cls: Any, table: dict, path: str, problems: list[str]) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "base_dir"}
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        where = f"{path}.{key}" if path else key
        if key not in fields:
            problems.append(f"{where}: unknown key (allowed: {', '.join(sorted(fields))})")
            continue
        kwargs[key] = _convert(value, hints[key], where, problems)
    missing = False
    for name, f in fields.items():
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            problems.append(f"{path + '.' if path else ''}{name}: required key is missing")
            missing = True
    if missing or any(v is None and fields[k].default is not None for k, v in kwargs.items()):
        return None
    return cls(**kwargs)


# ---------------------------------------------------------------- meaning checks

def _check_semantics(cfg: Config, problems: list[str]) -> None:
    provider_ids: set[str] = set()
    for i, p in enumerate(cfg.providers):
        where = f"providers[{i}]"
        if p.id in provider_ids:
            problems.append(f"{where}.id: duplicate provider id {p.id!r}")
        provider_ids.add(p.id)
        if p.kind not in PROVIDER_KINDS:
            problems.append(f"{where}.kind: {p.kind!r} is not one of {', '.join(PROVIDER_KINDS)}")
        if p.kind != "simulator" and not p.base_url:
            problems.append(f"{where}.base_url: required for kind {p.kind!r}")
        _check_positive(p, where, ("connect_timeout", "read_timeout", "max_connections",
                                   "chunk_chars"), problems)
        if p.chunk_delay < 0:
            problems.append(f"{where}.chunk_delay: must not be negative")
        if p.api not in ("chat", "responses") or (p.api != "chat" and p.kind != "openai"):
            problems.append(f"{where}.api: must be \"chat\", or \"responses\" for kind "
                            f"\"openai\", not {p.api!r}")
        if p.native_batch and p.kind not in ("openai", "anthropic", "gemini"):
            problems.append(f"{where}.native_batch: only kinds openai, anthropic and gemini "
                            "have a native batch API")
    public: dict[str, str] = {}
    for i, m in enumerate(cfg.models):
        where = f"models[{i}]"
        names = [(f"{where}.id", m.id)] + [(f"{where}.aliases[{k}]", a) for k, a in enumerate(m.aliases)]
        for key, name in names:
            if not name:
                problems.append(f"{key}: must not be empty")
            elif name in ("any", "auto"):
                problems.append(f"{key}: {name!r} is reserved for smart routing")
            elif name in public:
                problems.append(f"{key}: public id {name!r} already used by model {public[name]!r}")
            public[name] = m.id
        if not m.routes:
            problems.append(f"{where}.routes: at least one route is required")
        for j, r in enumerate(m.routes):
            if r.provider not in provider_ids:
                problems.append(f"{where}.routes[{j}].provider: unknown provider {r.provider!r}")
        if m.tier not in TIERS:
            problems.append(f"{where}.tier: {m.tier!r} is not one of {', '.join(TIERS)}")
        for cap in m.capabilities:
            if cap not in CAPABILITIES:
                problems.append(f"{where}.capabilities: unknown capability {cap!r}")
        for param in m.drop_params:
            if param not in DROPPABLE_PARAMS:
                problems.append(f"{where}.drop_params: {param!r} is not one of "
                                f"{', '.join(DROPPABLE_PARAMS)}")
        if m.system_messages not in ("in_place", "fold"):
            problems.append(f"{where}.system_messages: must be \"in_place\" or \"fold\", "
                            f"not {m.system_messages!r}")
        if m.hosted_tools not in ("drop", "refuse"):
            problems.append(f"{where}.hosted_tools: must be \"drop\" or \"refuse\", "
                            f"not {m.hosted_tools!r}")
        for price in ("input_usd_per_mtok", "output_usd_per_mtok", "cached_input_usd_per_mtok",
                      "image_usd", "video_usd", "search_usd", "request_usd", "speech_usd_per_mchar",
                      "audio_usd_per_minute", "page_usd", "audio_input_usd_per_mtok",
                      "audio_output_usd_per_mtok"):
            v = getattr(m, price)
            if v is not None and v < 0:
                problems.append(f"{where}.{price}: must not be negative")
        _check_positive(m, where, ("max_output_tokens", "context_window"), problems)
    for i, m in enumerate(cfg.models):
        if m.shadow is not None and (m.shadow.model not in public or public[m.shadow.model] == m.id):
            problems.append(f"models[{i}].shadow.model: {m.shadow.model!r} is not another model")
        if m.shadow is not None and not 0.0 <= m.shadow.sample_rate <= 1.0:
            problems.append(f"models[{i}].shadow.sample_rate: must be between 0 and 1")
    plan_ids = set()
    for i, pl in enumerate(cfg.plans):
        if pl.id in plan_ids:
            problems.append(f"plans[{i}].id: duplicate plan id {pl.id!r}")
        plan_ids.add(pl.id)
        for window in ("window_5h_usd", "window_7d_usd", "daily_usd"):
            v = getattr(pl, window)
            if v is not None and v < 0:
                problems.append(f"plans[{i}].{window}: must not be negative")
        if not (0 <= pl.daily_reset_hour <= 23):
            problems.append(f"plans[{i}].daily_reset_hour: must be 0..23")
        for m in pl.models:
            if m not in public:
                problems.append(f"plans[{i}].models: unknown model {m!r}")
        _check_plan(pl, f"plans[{i}]", problems)
    _check_routing(cfg.routing, problems)
    s = cfg.server
    _check_positive(s, "server", ("max_body_bytes", "read_timeout", "keep_alive_timeout",
                                  "max_request_seconds", "backlog", "max_connections"),
                    problems)
    if s.shutdown_grace < 0:
        problems.append("server.shutdown_grace: must not be negative")
    if not (0 <= s.port <= 65535):
        problems.append("server.port: must be 0..65535")
    # A zero sweep interval spins the sweeper; a zero hold TTL refuses every request.
    _check_positive(cfg.store, "store", ("hold_ttl_seconds", "sweep_interval"), problems)
    if cfg.store.hold_ttl_seconds <= cfg.server.max_request_seconds:
        # A hold must outlive the longest request, or the sweeper would expire the hold
        # of a stream still running and that stream would go unbilled.
        problems.append(f"store.hold_ttl_seconds: must exceed server.max_request_seconds "
                        f"({cfg.server.max_request_seconds:g})")
    if not 0 < cfg.jobs.native_poll_interval < cfg.store.hold_ttl_seconds:
        # Each poll keeps a native batch line's hold alive for another hold TTL.
        problems.append("jobs.native_poll_interval: must be above 0 and below "
                        f"store.hold_ttl_seconds ({cfg.store.hold_ttl_seconds:g})")
    _check_positive(cfg.control, "control", ("event_buffer",), problems)
    if cfg.store.url and not cfg.store.url.startswith(
            ("sqlite:///", "postgresql://", "postgres://")):
        problems.append("store.url: must start with sqlite:/// or postgresql://")
    if cfg.cache.url and not cfg.cache.url.startswith(("redis://", "rediss://", "unix://")):
        problems.append("cache.url: must start with redis://, rediss:// or unix://")
    if cfg.server.workers < 1:
        problems.append("server.workers: must be at least 1")
    if cfg.store.pool_size < 1:
        problems.append("store.pool_size: must be at least 1")
    if cfg.store.key_cache_ttl < 0:
        problems.append("store.key_cache_ttl: must not be negative")
    _check_limits(cfg.limits, problems)
    _check_positive(cfg.media, "media", ("fetch_max_bytes", "fetch_timeout",
                                         "video_poll_interval", "video_max_bytes"), problems)
    _check_positive(cfg.inference, "inference", ("upload_max_bytes", "max_documents", "ocr_max_pages"),
                    problems)
    if cfg.bootstrap.dev_key_credits_usd < 0:
        problems.append("bootstrap.dev_key_credits_usd: must not be negative")
    problems += [f"markups.{m}: must be between 0 and 1000 (percent)" for m in MODES
                 if not 0 <= getattr(cfg.markups, m) <= 1000]
    check_protocols(cfg, set(public), problems)


def _check_plan(pl: PlanConfig, where: str, problems: list[str]) -> None:
    if pl.daily_usd is not None and (pl.window_5h_usd is not None or pl.window_7d_usd is not None):
        problems.append(f"{where}.daily_usd: a plan has rolling windows (window_5h_usd, "
                        "window_7d_usd) or a daily window, not both")
    for mode in pl.modes:
        if mode not in TIERS:
            problems.append(f"{where}.modes: {mode!r} is not one of {', '.join(TIERS)}")
    for name in ("daily_input_tokens", "daily_output_tokens", "max_tokens", "session_messages",
                 "key_rpm", "key_tpm", "account_rpm", "account_tpm"):
        v = getattr(pl, name)
        if v is not None and v < 0:
            problems.append(f"{where}.{name}: must not be negative")
    if pl.max_tokens == 0:
        problems.append(f"{where}.max_tokens: must be positive")


def _check_limits(lim: LimitsConfig, problems: list[str]) -> None:
    for name in ("key_rpm", "key_tpm", "account_rpm", "account_tpm"):
        if getattr(lim, name) < 0:
            problems.append(f"limits.{name}: must not be negative (0 means no limit)")
    if lim.burst_seconds <= 0:
        problems.append("limits.burst_seconds: must be positive")


def _check_routing(r: RoutingConfig, problems: list[str]) -> None:
    if r.default_mode and r.default_mode not in MODES:
        problems.append(f"routing.default_mode: {r.default_mode!r} is not one of {', '.join(MODES)}")
    for mode in MODES:
        rule = getattr(r, mode)
        if rule.pick and rule.pick not in PICKS:
            problems.append(f"routing.{mode}.pick: {rule.pick!r} is not one of {', '.join(PICKS)}")
        for task in TASK_TYPES:
            tier = getattr(rule, task)
            if tier and tier not in TIERS:
                problems.append(f"routing.{mode}.{task}: {tier!r} is not one of {', '.join(TIERS)}")
    _check_positive(r, "routing", ("breaker_failures", "breaker_cooldown", "session_ttl",
                                   "session_max_messages", "session_compact_at",
                                   "session_keep_messages"), problems)
    # Compaction must fire before the cap and leave room for the next turns.
    if not r.session_keep_messages < r.session_compact_at <= r.session_max_messages:
        problems.append("routing: need session_keep_messages < session_compact_at <= "
                        "session_max_messages")


def _check_positive(section: Any, where: str, names: tuple[str, ...], problems: list[str]) -> None:
    for name in names:
        if getattr(section, name) <= 0:
            problems.append(f"{where}.{name}: must be positive")


def parse_config(data: dict, *, base_dir: str = ".", source: str = "prism.toml") -> Config:
    problems: list[str] = []
    cfg = _build(Config, data, "", problems)
    if cfg is not None and not problems:
        _check_semantics(cfg, problems)
    if problems:
        raise ConfigError(problems, source)
    return dataclasses.replace(cfg, base_dir=base_dir)


def load_config(path: str | os.PathLike) -> Config:
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"file not found: {p}"], str(p)) from None
    except OSError as exc:  # a directory, no permission, ...
        raise ConfigError([f"cannot read {p}: {exc.strerror or exc}"], str(p)) from None
    except UnicodeDecodeError:
        raise ConfigError(["not valid UTF-8 (TOML files are UTF-8)"], str(p)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"not valid TOML: {exc}"], str(p)) from None
    return parse_config(data, base_dir=str(p.resolve().parent), source=str(p))
