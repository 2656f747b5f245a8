"""The parts a config reload or an operator's flag change swaps: the config, the
catalog derived from it and the providers built from it.

One small mutable cell, handed by server.py to each engine part that reads them. A
swap assigns its fields with no await in between, and each call reads them as it
goes, so an in-flight request keeps the route and provider it already picked.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from gateway.config import Config
from gateway.routing.catalog import Catalog


@dataclass
class Live:
    config: Config
    catalog: Catalog
    providers: dict[str, Any]          # provider id -> providers.base.Provider
    # Providers a reload replaced, which in-flight requests may still be using: closed
    # at shutdown, not at the swap.
    retired: list[Any] = field(default_factory=list)


class Observers:
    """Who hears of each finished request: called with its log record (a dict) right
    after it is written. The live event feed and metrics subscribe; observers must be
    quick and must not raise, as they run on the event loop."""

    def __init__(self, *initial: Callable[[dict[str, Any]], None]) -> None:
        self._fns = list(initial)

    def append(self, fn: Callable[[dict[str, Any]], None]) -> None:
        self._fns.append(fn)

    def remove(self, fn: Callable[[dict[str, Any]], None]) -> None:
        self._fns.remove(fn)

    def __call__(self, record: dict[str, Any]) -> None:
        for fn in self._fns:
            fn(record)
