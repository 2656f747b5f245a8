"""Prices and costs in integer micro-USD (pure).

Config prices are USD per million tokens, which is numerically micro-USD per token; we
keep them as integer pico-USD per token (x1e6) so sub-micro prices like $0.15/Mtok stay
exact, and round a request's total up to the next micro-USD once, at the end.
"""
from __future__ import annotations

from dataclasses import dataclass

from gateway.canonical import Usage

MICROS_PER_USD = 1_000_000
_PICO = 1_000_000  # pico-USD per micro-USD


@dataclass(frozen=True)
class TokenPrice:
    """Per-token prices in pico-USD (1e-12 USD)."""
    input_pico: int
    output_pico: int
    cached_input_pico: int

    @classmethod
    def from_usd_per_mtok(cls, input_usd: float, output_usd: float,
                          cached_input_usd: float | None = None) -> "TokenPrice":
        cached = input_usd if cached_input_usd is None else cached_input_usd
        return cls(_usd_mtok_to_pico(input_usd), _usd_mtok_to_pico(output_usd),
                   _usd_mtok_to_pico(cached))


def _usd_mtok_to_pico(usd_per_mtok: float) -> int:
    # $X per 1e6 tokens = X * 1e12 / 1e6 pico-USD per token; round once, here.
    return round(usd_per_mtok * 1_000_000)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def cost_micros(price: TokenPrice, usage: Usage) -> int:
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    pico = ((usage.input_tokens - cached) * price.input_pico
            + cached * price.cached_input_pico
            + usage.output_tokens * price.output_pico)
    return _ceil_div(pico, _PICO)


def worst_case_micros(price: TokenPrice, prompt_tokens: int, max_output_tokens: int) -> int:
    """What to hold before the call: the whole prompt at full price plus the output cap."""
    return cost_micros(price, Usage(input_tokens=prompt_tokens, output_tokens=max_output_tokens))


def markup_micros(base_micros: int, basis_points: int) -> int:
    """A mode's markup on a price (basis points: 1500 is 15%), rounded up like every
    price; monotone, so the markup of a hold covers the markup of any cost under it."""
    return _ceil_div(base_micros * basis_points, 10_000) if basis_points > 0 else 0


def usd_to_micros(usd: float) -> int:
    return round(usd * MICROS_PER_USD)


def format_usd(micros: int) -> str:
    """Display form for headers and tables: fixed six decimals, never float-rounded."""
    sign = "-" if micros < 0 else ""
    m = abs(micros)
    return f"{sign}{m // MICROS_PER_USD}.{m % MICROS_PER_USD:06d}"
