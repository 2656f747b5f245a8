"""Request metrics: counters fed by the request observer, rendered as Prometheus text.

Metrics is a Services observer, so it sees each finished request's log record once,
on the event loop, and must stay cheap: a few dict increments and one bisect. Gauges
that live elsewhere (open holds in the store, provider flags, breaker state) are
passed to `render` by the caller at scrape time. Labels only ever take values from a
bounded set: a model name the client made up is reported as "other", and Gemini paths
lose the model segment, so a hostile client cannot grow the series without bound.
"""
from __future__ import annotations

import bisect
import math
import re
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable

# Seconds; a chat completion spans milliseconds (a refusal) to minutes (a long stream).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
           120.0, 300.0)
RECENT_SECONDS = 300.0
_GEMINI_MODEL = re.compile(r"(/models/)[^/:]+")


@dataclass(frozen=True)
class ProviderGauge:
    """What the scrape reports per provider, from state the metrics do not own."""
    provider: str
    enabled: bool
    breaker: str = "closed"

    def __post_init__(self) -> None:
        if self.breaker not in ("closed", "open", "half_open"):
            raise ValueError(f"unknown breaker state {self.breaker!r}")


def route_label(route: str) -> str:
    return _GEMINI_MODEL.sub(r"\1{model}", route or "")


def is_upstream_error(record: dict[str, Any]) -> bool:
    """A request that reached a provider and failed because of it: 5xx from us (the
    502 family) or the upstream's own 429. A client hanging up (499) is not one."""
    status = record.get("status") or 0
    return bool(record.get("provider")) and (status >= 500 or status == 429)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def _labels(**labels: str) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items()) + "}"


def _num(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class Metrics:
    def __init__(self, models: Iterable[str] = (),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._models = frozenset(models)
        self._clock = clock
        self.requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self.buckets: dict[str, list[int]] = {}
        self.duration_sum: dict[str, float] = defaultdict(float)
        self.duration_count: dict[str, int] = defaultdict(int)
        self.tokens = {"in": 0, "out": 0, "cached": 0}
        self.cost_micros = 0
        self.upstream_errors: dict[str, int] = defaultdict(int)
        # Per provider: monotonic times of recent requests and failures, for health.
        # Per provider, one [second, requests, errors] bucket per second of the window:
        # at most RECENT_SECONDS small lists however many requests (one entry per
        # request held ~85 bytes each for five minutes: ~40 MB at 1,500 requests/s).
        self._recent: dict[str, deque[list]] = defaultdict(deque)

    def set_models(self, models: Iterable[str]) -> None:
        """The configured model ids (at start and on reload): the model label's values."""
        self._models = frozenset(models)

    def observe(self, record: dict[str, Any]) -> None:
        """The Services observer: must not raise, must not block."""
        route = route_label(record.get("route") or "")
        model = record.get("model") or ""
        if model and model not in self._models:
            model = "other"
        status = str(record.get("status") or 0)
        self.requests[(route, model, status)] += 1
        seconds = max(0.0, float(record.get("latency_ms") or 0.0) / 1000.0)
        counts = self.buckets.setdefault(route, [0] * len(BUCKETS))
        i = bisect.bisect_left(BUCKETS, seconds)
        if i < len(BUCKETS):
            counts[i] += 1
        self.duration_sum[route] += seconds
        self.duration_count[route] += 1
        self.tokens["in"] += int(record.get("tokens_in") or 0)
        self.tokens["out"] += int(record.get("tokens_out") or 0)
        self.tokens["cached"] += int(record.get("cached_tokens") or 0)
        self.cost_micros += int(record.get("cost_micros") or 0)
        provider = record.get("provider")
        if provider:
            failed = is_upstream_error(record)
            if failed:
                self.upstream_errors[provider] += 1
            recent = self._recent[provider]
            second = int(self._clock())
            if recent and recent[-1][0] == second:
                bucket = recent[-1]
                bucket[1] += 1
                bucket[2] += failed
            else:
                recent.append([second, 1, int(failed)])
                self._trim(recent)

    def _trim(self, recent: deque[list]) -> None:
        cutoff = self._clock() - RECENT_SECONDS
        while recent and recent[0][0] < cutoff:
            recent.popleft()

    def recent(self, provider: str) -> dict[str, int]:
        """Requests and upstream errors of the last RECENT_SECONDS for a provider."""
        recent = self._recent.get(provider)
        if recent is None:
            return {"requests": 0, "errors": 0, "window_seconds": int(RECENT_SECONDS)}
        self._trim(recent)
        return {"requests": sum(b[1] for b in recent), "errors": sum(b[2] for b in recent),
                "window_seconds": int(RECENT_SECONDS)}

    def render(self, *, open_holds: int, providers: Iterable[ProviderGauge]) -> str:
        """The Prometheus text exposition format, version 0.0.4."""
        out: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")

        family("prism_requests_total", "counter", "Finished requests by route, model and status.")
        for (route, model, status), n in sorted(self.requests.items()):
            out.append(f"prism_requests_total{_labels(route=route, model=model, status=status)} {n}")
        family("prism_request_duration_seconds", "histogram",
               "Request latency from arrival to settlement.")
        for route in sorted(self.buckets):
            cumulative = 0
            for le, n in zip(BUCKETS, self.buckets[route], strict=True):
                cumulative += n
                out.append("prism_request_duration_seconds_bucket"
                           f"{_labels(route=route, le=_num(le))} {cumulative}")
            out.append("prism_request_duration_seconds_bucket"
                       f"{_labels(route=route, le='+Inf')} {self.duration_count[route]}")
            out.append(f"prism_request_duration_seconds_sum{_labels(route=route)} "
                       f"{_num(self.duration_sum[route])}")
            out.append(f"prism_request_duration_seconds_count{_labels(route=route)} "
                       f"{self.duration_count[route]}")
        family("prism_tokens_total", "counter", "Tokens billed, by direction.")
        for direction, n in self.tokens.items():
            out.append(f"prism_tokens_total{_labels(direction=direction)} {n}")
        family("prism_cost_micros_total", "counter", "Micro-USD charged to wallets.")
        out.append(f"prism_cost_micros_total {self.cost_micros}")
        family("prism_open_holds", "gauge", "Wallet holds currently open.")
        out.append(f"prism_open_holds {open_holds}")
        providers = list(providers)
        family("prism_upstream_errors_total", "counter",
               "Requests failed by their upstream (5xx or upstream 429), by provider.")
        seen = {g.provider for g in providers} | set(self.upstream_errors)
        for provider in sorted(seen):
            out.append(f"prism_upstream_errors_total{_labels(provider=provider)} "
                       f"{self.upstream_errors.get(provider, 0)}")
        family("prism_provider_enabled", "gauge", "1 when the provider takes traffic.")
        for g in providers:
            out.append(f"prism_provider_enabled{_labels(provider=g.provider)} {int(g.enabled)}")
        family("prism_circuit_breaker_state", "gauge",
               "1 for each provider's current breaker state (the worst of its routes').")
        for g in providers:
            for state in ("closed", "open", "half_open"):
                out.append(f"prism_circuit_breaker_state{_labels(provider=g.provider, state=state)} "
                           f"{int(g.breaker == state)}")
        return "\n".join(out) + "\n"
