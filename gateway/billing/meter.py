"""Folds a stream of canonical events into the usage to bill (pure).

The meter watches what was actually handed to the client. When the upstream reports
usage, that wins; when the stream is cut before usage arrives, the bill is the prompt
plus what was delivered, counted with the tokenizer and marked estimated.
"""
from __future__ import annotations

from typing import Callable

from gateway import canonical as c
from gateway import tokenizer


class Meter:
    def __init__(self, prompt_tokens: int | Callable[[], int]) -> None:
        # A callable is asked only if the bill must be estimated: exact counting loads
        # the tokenizer's tables, which the usual request never needs.
        self.prompt_tokens = prompt_tokens
        self.upstream_usage: c.Usage | None = None
        self.finish: c.FinishReason | None = None
        self._delivered: list[str] = []
        self.events = 0

    def delivered(self, ev: c.StreamEvent) -> None:
        """Record an event once it has been written to the client."""
        self.events += 1
        if isinstance(ev, c.TextDelta):
            self._delivered.append(ev.text)
        elif isinstance(ev, c.ThinkingDelta):
            self._delivered.append(ev.text)
        elif isinstance(ev, c.ToolCallStart):
            self._delivered.append(ev.name)
        elif isinstance(ev, c.ToolCallDelta):
            self._delivered.append(ev.arguments)
        elif isinstance(ev, c.Finish):
            self.finish = ev.reason
        elif isinstance(ev, c.UsageEvent):
            self.upstream_usage = ev.usage

    def seen_usage(self, usage: c.Usage) -> None:
        """Usage the upstream reported even if the client never got that chunk."""
        self.upstream_usage = usage

    @property
    def delivered_text(self) -> str:
        return "".join(self._delivered)

    @property
    def produced_output(self) -> bool:
        return any(self._delivered)

    def usage(self) -> c.Usage:
        if self.upstream_usage is not None:
            return self.upstream_usage
        prompt = self.prompt_tokens() if callable(self.prompt_tokens) else self.prompt_tokens
        return c.Usage(input_tokens=prompt,
                       output_tokens=tokenizer.count_text("".join(self._delivered)),
                       estimated=True)
