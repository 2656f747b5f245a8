"""Textual runs on asyncio while pytest-trio owns every `async def` test here, so TUI
tests are plain functions that call asyncio.run themselves. Helpers for that."""
from __future__ import annotations

import asyncio
import time

import pytest


async def _until(pilot, predicate, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await pilot.pause(0.05)
    raise AssertionError(f"{what} not met within {timeout}s")


@pytest.fixture
def until():
    return _until


@pytest.fixture
def run():
    def runner(coro):
        return asyncio.run(coro)
    return runner


def screen_text(app) -> str:
    """What the terminal shows, as text (styles dropped)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


@pytest.fixture
def text():
    return screen_text
