"""Routes of the anthropic dialect (being built for the protocols issue)."""
from __future__ import annotations

from quart import Blueprint

bp = Blueprint("anthropic", __name__)
