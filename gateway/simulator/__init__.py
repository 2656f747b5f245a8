"""A deterministic upstream LLM for tests, benchmarks and the first run.

core.py decides what the simulated model says (pure); faults.py reads the ``[[sim ...]]``
directives that make one request slow, broken or cut; inproc.py is the async upstream
the "simulator" provider kind calls; server.py serves the same model over HTTP in the
OpenAI Chat Completions wire format (``prism simulate``).

Importing this package stays pure; ``Simulator`` (trio) loads on first use.
"""
from gateway.simulator.core import (
    SIM_MODELS, Fault, SimOptions, parse_fault, reply_text, respond, stream_events,
)

__all__ = [
    "SIM_MODELS", "Fault", "SimOptions", "Simulator", "parse_fault", "reply_text",
    "respond", "stream_events",
]


def __getattr__(name: str):
    if name == "Simulator":
        from gateway.simulator.inproc import Simulator
        return Simulator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
