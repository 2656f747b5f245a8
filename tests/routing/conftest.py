"""Routing tests: the classifier's figures go into the normal pytest summary.

Tests append lines to ``config.stash[REPORT]``; the terminal-summary hook prints them
under a "task classifier" heading, so accuracy, the confusion matrix and the time per
prompt are visible in every run without -s.
"""
from __future__ import annotations

import pytest

REPORT = pytest.StashKey[list]()


def report_lines(config: pytest.Config) -> list[str]:
    if REPORT not in config.stash:
        config.stash[REPORT] = []
    return config.stash[REPORT]


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    lines = config.stash.get(REPORT, None)
    if lines:
        terminalreporter.section("task classifier")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture
def classifier_report(request) -> list[str]:
    """Lines for the end-of-run "task classifier" section."""
    return report_lines(request.config)
