"""Routes of the responses dialect (being built for the protocols issue)."""
from __future__ import annotations

from quart import Blueprint

bp = Blueprint("responses", __name__)
