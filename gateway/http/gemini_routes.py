"""Routes of the gemini dialect (being built for the protocols issue)."""
from __future__ import annotations

from quart import Blueprint

bp = Blueprint("gemini", __name__)
