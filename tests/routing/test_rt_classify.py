"""The task classifier against labelled prompts written for this project.

eval_prompts.jsonl (240 prompts, 60 per label) is the regression set: the keyword
tables were tuned while looking at it, so its accuracy is optimistic, and the test
fails if it drops below the measured baseline minus a small margin.
holdout_prompts.jsonl (80) was written after that tuning and scored once at 72.5 %
before a second round of general changes (broader vocabulary, word problems,
comparison chains); holdout2_prompts.jsonl (48) was written after the last change and
never tuned against. Their figures are the honest ones and are printed too.

Labels: simple = short factual, chit-chat, one-line rewrites; code = the subject or
product is source code, shells, SQL, configs or program errors; reasoning = maths,
logic, puzzles, estimates with one right answer reached in steps; complex = long-form,
multi-part or open-ended work (essays, plans, designs, analyses).
"""
from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from pathlib import Path

import pytest

from gateway import canonical as c
from gateway.routing.classify import TASK_TYPES, Classification, classify, classify_text

HERE = Path(__file__).parent
BASELINE = 0.958          # measured on eval_prompts.jsonl when the tables were frozen
MARGIN = 0.02
HOLDOUT_FLOOR = 0.85      # both holdouts together measured 0.898
BUDGET_US = 50.0


def _load(name: str) -> list[dict]:
    return [json.loads(line) for line in (HERE / name).read_text().splitlines() if line.strip()]


def _score(rows: list[dict]) -> tuple[float, Counter]:
    confusion: Counter = Counter()
    for r in rows:
        confusion[(r["label"], classify_text(r["prompt"]).label)] += 1
    right = sum(n for (want, got), n in confusion.items() if want == got)
    return right / len(rows), confusion


def _matrix(confusion: Counter) -> list[str]:
    head = "  want \\ got " + "".join(f"{t:>11}" for t in TASK_TYPES)
    rows = [head]
    for want in TASK_TYPES:
        rows.append(f"  {want:<11}" + "".join(f"{confusion[(want, got)]:>11}" for got in TASK_TYPES))
    return rows


def test_eval_set_is_labelled_and_big_enough():
    rows = _load("eval_prompts.jsonl")
    assert len(rows) >= 200
    assert {r["label"] for r in rows} == set(TASK_TYPES)
    assert len({r["prompt"] for r in rows}) == len(rows)
    held = {r["prompt"] for f in ("holdout_prompts.jsonl", "holdout2_prompts.jsonl")
            for r in _load(f)}
    assert not held & {r["prompt"] for r in rows}


def test_accuracy_on_the_evaluation_set(classifier_report):
    rows = _load("eval_prompts.jsonl")
    accuracy, confusion = _score(rows)
    classifier_report.append(f"eval set ({len(rows)} prompts): accuracy {accuracy:.1%} "
                             f"(baseline {BASELINE:.1%}, fails below {BASELINE - MARGIN:.1%})")
    classifier_report.extend(_matrix(confusion))
    assert accuracy >= BASELINE - MARGIN


def test_accuracy_on_the_holdouts(classifier_report):
    total_right = total = 0
    for name in ("holdout_prompts.jsonl", "holdout2_prompts.jsonl"):
        rows = _load(name)
        accuracy, confusion = _score(rows)
        total_right += round(accuracy * len(rows))
        total += len(rows)
        classifier_report.append(f"{name} ({len(rows)} prompts): accuracy {accuracy:.1%}")
        classifier_report.extend(_matrix(confusion))
    assert total_right / total >= HOLDOUT_FLOOR


def test_time_per_typical_prompt(classifier_report):
    """Median over the evaluation prompts of the best-of-5 time per call: the minimum
    filters out a busy machine's scheduling, the median is the typical prompt."""
    prompts = [r["prompt"] for r in _load("eval_prompts.jsonl")]
    per_prompt = []
    for p in prompts:
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(20):
                classify_text(p)
            best = min(best, (time.perf_counter() - t0) / 20)
        per_prompt.append(best * 1e6)
    median = statistics.median(per_prompt)
    long_prompt = " ".join(prompts) * 4           # ~90 kB: bounded by the head/tail scan
    long_us = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        classify_text(long_prompt)
        long_us = min(long_us, (time.perf_counter() - t0) * 1e6)
    classifier_report.append(
        f"time per prompt: median {median:.1f} us, p90 {statistics.quantiles(per_prompt, n=10)[-1]:.1f} us, "
        f"max {max(per_prompt):.1f} us (budget {BUDGET_US:.0f} us); "
        f"a {len(long_prompt) // 1000} kB prompt: {long_us:.0f} us")
    assert median < BUDGET_US


@pytest.mark.parametrize("text, label", [
    ("hi", "simple"),
    ("```python\nprint('x')\n```\nwhy does this fail?", "code"),
    ("Prove that there are infinitely many primes.", "reasoning"),
    ("Write a comprehensive 2000-word report on renewable energy policy in the EU, "
     "covering history, current targets, funding and the main political debates.", "complex"),
])
def test_labels_and_signals(text, label):
    result = classify_text(text)
    assert result.label == label
    assert result.signals                      # every decision names what decided it
    assert label in result.explain()
    if label != "simple":
        assert any(s.startswith(label + ":") for s in result.signals)


def test_deterministic_and_reads_the_last_user_message():
    text = "Write a SQL query that counts orders per customer, then explain its plan."
    first = classify_text(text)
    assert all(classify_text(text) == first for _ in range(5))
    req = c.Request(model="any", messages=(
        c.Message("system", (c.TextPart("You are a poet. Write an essay, a plan, a report."),)),
        c.Message("user", (c.TextPart("Prove that 17 is prime."),)),
        c.Message("assistant", (c.TextPart("Sure."),)),
        c.Message("user", (c.TextPart(text),)),
    ))
    assert classify(req) == first
    assert classify(c.Request(model="any", messages=())).label == "simple"


def test_huge_prompts_are_bounded_and_still_labelled():
    body = "def f(x):\n    return x * 2\n" * 20000
    result = classify_text(body)
    assert result.label == "code"
    assert isinstance(result, Classification)
