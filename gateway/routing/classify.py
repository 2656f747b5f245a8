"""The task classifier: simple | code | reasoning | complex, with the signals that decided (pure).

Smart routing needs a label in microseconds, before any upstream is chosen, so this is
a scorer over cheap surface features rather than a model:

    code       fenced blocks, code syntax (``def f(``, ``=>``, ``#include``, tracebacks),
               language and tool names, programming vocabulary
    reasoning  arithmetic and equations, numbers in the question, maths and logic words
               ("prove", "probability", "how many"), puzzle phrasing
    complex    length, deliverable words ("essay", "plan", "strategy", "report"),
               depth words ("comprehensive", "in depth"), many enumerated parts
    simple     what is left: short questions, chit-chat, one-line rewrites

Each category sums integer weights; the highest score wins if it reaches the
threshold, otherwise the label is ``simple``. Ties go code > reasoning >
complex (the more specific need wins). The same text always gets the same label and
the same signals, and ``signals`` names every feature that scored, so a routing
decision can be explained from the response headers and the log.

Only the last user message is read: it is what the caller is asking now; earlier
turns and system prompts mostly describe context, not the task. Text beyond the
first ``_HEAD`` and last ``_TAIL`` characters is not scanned for keywords (its length
still counts), which bounds the cost of a huge prompt.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

from gateway import canonical as c

__all__ = ["TASK_TYPES", "Classification", "classify", "classify_text"]

TASK_TYPES = ("simple", "code", "reasoning", "complex")

_HEAD = 3000
_TAIL = 1000

# A category must reach this score to beat "simple"; one weak word is not enough.
_THRESHOLD = 3
_PRIORITY = ("code", "reasoning", "complex")

# Cost matters more than elegance here (the budget is 50 us): words come from one
# findall and meet the keyword tables by set intersection; multi-word phrases are only
# looked for when their longest word occurs; code punctuation is looked for only when
# one search finds a character that prose rarely uses. sre is quick with patterns that
# open on a literal and slow with long alternations, hence the shapes below.
_WORD_RE = re.compile(r"[a-z][a-z0-9_+#'-]*")
_NUMBER_RE = re.compile(r"(?<![\w.])\d+(?:[.,:]\d+)?%?")
_HAS_DIGIT_RE = re.compile(r"\d")
_CODE_CHAR_RE = re.compile(r"[`={}<>#$_|\\;]|\(\)|\n[ \t]")


def _weights(strong: str, medium: str = "", weak: str = "") -> Mapping[str, int]:
    """Word -> weight: strong words decide alone, weak ones only add to other evidence.
    Read-only, like every table here: module constants, never state."""
    table = {w: 1 for w in weak.split()}
    table.update({w: 2 for w in medium.split()})
    table.update({w: 3 for w in strong.split()})
    return MappingProxyType(table)


def _phrases(*phrases: str) -> Mapping[str, tuple[str, ...]]:
    """Phrases indexed by their longest word, so that a phrase is only searched for when
    its least common word occurs ("many" for "how many", not "how")."""
    table: dict[str, list[str]] = {}
    for ph in phrases:
        table.setdefault(max(ph.split(), key=len), []).append(ph)
    return MappingProxyType({k: tuple(v) for k, v in table.items()})


# ---------------------------------------------------------------- code

_CODE_LITERALS = ("```", "=>", "#include", "();", "){", ") {", "};", "!=", "==", "+=", "->",
                  "::", "</", "/>", "__", "$ ", "\n  ", "\n\t", "()")
_CODE_SHAPES = (re.compile(r"`[^`\n]+`"), re.compile(r"\.[a-z_]\w*\("))
# Language names that are ordinary words in lower case ("go", "c", "r").
_CASED_LANGUAGES = (" Go ", " C ", " C,", " R ", "Go program", "in Go", "in C.", "in C?")
_ERROR_NAMES = ("Error:", "Error(", "Exception", "Errno")   # FooError: ..., a Java stack
_CODE_WORDS = _weights(
    strong="python javascript typescript java rust golang c++ c# sql bash powershell regex "
           "html css react django flask nodejs kubernetes dockerfile nginx pandas numpy "
           "kotlin haskell php scala pytest npm graphql terraform jquery webpack g++ gcc "
           "clang asyncio matlab scss swift ruby perl lua postgresql mysql sqlite traceback "
           "stacktrace",
    medium="code coding function functions compile compiler debug debugging refactor "
           "syntax segfault repo repository recursion recursive dataclass async snippet "
           "programming endpoint backend frontend struct pointer iterator lambda closure "
           "callback constructor stdout stderr localhost one-liner idiomatic docker git commit "
           "algorithm algorithms quicksort mergesort hashmap segmentation injection "
           "makefile cmake mutex mutexes semaphore deadlock concurrency rebase ubuntu debian "
           "kernel interpreter dataframe pytorch tensorflow jupyter vscode vim ssh cron sdk "
           "dependency dependencies env nullpointerexception stdin"
           "github yaml json linux unix shell script api method methods variable variables "
           "implement def import null console sudo pip http https",
    weak="bug array loop implementation query expression thread library module package "
         "deploy deployment config terminal cli string integer boolean class object "
         "instance interface keyword unit test tests error errors stack binary search sort "
         "parse csv file files command profile complexity migration workflow cache program "
         "spring rails vue angular express regular linked list tuple dictionary "
         "dictionaries component print self select request server crash crashes hook hooks "
         "merge branch queue queues heap hash memory leak container process processes "
         "race condition runtime framework notebook build targets project validate")

# ---------------------------------------------------------------- reasoning

_MATH_RE = re.compile(r"[-+*/^×÷=<>]\s*\(?\d")   # an operator before a number
_MATH_LITERALS = ("sqrt", "√", "∫", "∑")
_REASONING_PHRASES = _phrases(
    "how many", "how much", "how long until", "how long would", "how long will",
    "how high", "how far", "how fast", "step by step", "which is bigger", "which is larger",
    "which is greater", "which weighs", "show that", "work out", "at least one",
    "next number", "walk me through why", "what day of the week", "the fewest",
    "as much as", "twice as", "how old")
_REASONING_WORDS = _weights(
    strong="prove proof probability probabilities equation equations integral derivative "
           "puzzle riddle deduce deduction theorem induction factorial divisible remainder "
           "gcd lcm irrational solve permutations combinations handshakes weighings "
           "knights knaves syllogism justify",
    medium="calculate calculation percent percentage ratio logic logically sequence prime "
           "odds dice coin compounded interest angle perimeter triangle mph hypotenuse "
           "median squared velocity algebra geometry fraction decimal hexadecimal "
           "therefore implies estimate expected limit sum average mean area valid divisor "
           "definitely exactly",
    weak="speed sides square cube minimum maximum bigger larger smaller heavier older "
         "younger oldest youngest faster overlap doubles times convert chance catch truth "
         "lie liars problem total cost costs number numbers taller shorter pattern term "
         "discount original circumference diagonals digits upstream downstream rate")

# ---------------------------------------------------------------- complex

_COMPLEX_PHRASES = _phrases(
    "in depth", "pros and cons", "business plan", "step-by-step guide", "including",
    "covering", "with weekly", "with daily", "for the next", "over two years",
    "week by week", "day by day", "first chapter", "short story", "build the world",
    "strengths and weaknesses", "executive summary", "literature review", "how should",
    "help me structure", "fill it in", "explain how each")
_COMPLEX_WORDS = _weights(
    strong="essay comprehensive thorough in-depth curriculum handbook roadmap itinerary "
           "postmortem op-ed swot go-to-market trade-offs tradeoffs second-order",
    medium="report plan planning strategy strategies detailed analyze analyse analysis "
           "comparison evaluate assess discuss architecture framework proposal propose "
           "outline implications consequences campaign policy chapter speech critique "
           "examine explainer stakeholders recommendations everything landscape scenarios "
           "governance checklist investigation persuasive debate prospects novel "
           "transformation mission vision values",
    weak="design story review summary compare comparing guide timeline program template "
         "requirements research develop draft budget metrics kpis structure redesign "
         "history lessons evidence world recommend recommendation")


def _index(tables: dict[str, Mapping[str, Any]]) -> Mapping[str, tuple[tuple[str, Any], ...]]:
    """key -> ((category, value), ...) across categories, read-only."""
    out: dict[str, tuple[tuple[str, Any], ...]] = {}
    for cat, table in tables.items():
        for key, value in table.items():
            values = value if isinstance(value, tuple) else (value,)
            out[key] = out.get(key, ()) + tuple((cat, v) for v in values)
    return MappingProxyType(out)


# One intersection with each index finds every category's words or phrase keys.
_WORD_TABLE = _index({"code": _CODE_WORDS, "reasoning": _REASONING_WORDS,
                      "complex": _COMPLEX_WORDS})
_WORD_KEYS = frozenset(_WORD_TABLE)
_PHRASE_TABLE = _index({"reasoning": _REASONING_PHRASES, "complex": _COMPLEX_PHRASES})
_PHRASE_KEYS = frozenset(_PHRASE_TABLE)
_LENGTH_WORD_RE = re.compile(r"\d[- ]words?\b")   # "a 1500-word essay"


@dataclass(frozen=True)
class Classification:
    label: str
    signals: tuple[str, ...]          # "code:language=python", "complex:length=140w", ...
    scores: tuple[tuple[str, int], ...]

    def __post_init__(self) -> None:
        if self.label not in TASK_TYPES:
            raise ValueError(f"unknown task type {self.label!r}")

    def explain(self) -> str:
        return f"{self.label} ({', '.join(self.signals) or 'no strong signal'})"


def _last_user_text(req: c.Request) -> str:
    for m in reversed(req.messages):
        if m.role == "user":
            text = m.text
            if text:
                return text
    return ""


def classify(req: c.Request) -> Classification:
    return classify_text(_last_user_text(req))


def _word_scores(wset: set[str], signals: list[str], other: dict[str, int]) -> dict[str, int]:
    found: dict[str, list[str]] = {"code": [], "reasoning": [], "complex": []}
    scores = {"code": 0, "reasoning": 0, "complex": 0}
    for w in sorted(wset & _WORD_KEYS):            # sorted: signals never in hash order
        for cat, weight in _WORD_TABLE[w]:
            found[cat].append(w)
            scores[cat] += weight
    for cat, score in scores.items():
        if score < 2 and not other[cat]:
            scores[cat] = 0   # one weak word alone is noise ("class president")
        elif found[cat]:
            signals.append(f"{cat}:words={'+'.join(found[cat])}")
    return scores


def _phrase_hits(low: str, wset: set[str]) -> tuple[list[str], list[str]]:
    reasoning: list[str] = []
    complex_: list[str] = []
    for w in sorted(wset & _PHRASE_KEYS):
        for cat, ph in _PHRASE_TABLE[w]:
            if ph in low:
                (reasoning if cat == "reasoning" else complex_).append(ph)
    return reasoning, complex_


def classify_text(text: str) -> Classification:
    n_chars = len(text)
    long = n_chars > _HEAD + _TAIL
    scan = text[:_HEAD] + "\n" + text[-_TAIL:] if long else text
    low = scan.lower()
    words = _WORD_RE.findall(low)
    wset = set(words)
    n_words = n_chars // 6 if long else len(words)
    signals: list[str] = []

    code = 0
    if _CODE_CHAR_RE.search(scan):
        lits = [lit for lit in _CODE_LITERALS if lit in scan]
        lits += [m.group(0) for rx in _CODE_SHAPES for m in [rx.search(scan)] if m]
        if lits:
            # A fence or an inline `span` is how people paste code into chat.
            code += 2 * min(len(lits), 3) + 2 * ("```" in lits) + any(x[0] == "`" for x in lits)
            signals.append(f"code:syntax={'|'.join(x.strip() or repr(x) for x in lits)}")
    else:
        shape = _CODE_SHAPES[1].search(low)
        if shape:
            code += 2
            signals.append(f"code:syntax={shape.group(0)}")
    langs = [n for n in _CASED_LANGUAGES if n in scan]
    if langs:
        code += 3
        signals.append(f"code:language={'|'.join(n.strip() for n in langs)}")
    names = [n for n in _ERROR_NAMES if n in scan]
    if names:
        code += 3
        signals.append(f"code:error-name={'|'.join(names)}")

    reasoning = 0
    numbers = 0
    if _HAS_DIGIT_RE.search(low):
        # Operators inside code are code ("x * 2"), not a sum to work out.
        maths = 0 if code >= 2 else len(_MATH_RE.findall(low))
        if maths:
            reasoning += 2 * min(maths, 2)
            signals.append(f"reasoning:math×{maths}")
        numbers = len(_NUMBER_RE.findall(low))
        if numbers >= 3:
            # "What is 2+2?" is a lookup; quantities to combine make a problem.
            reasoning += 2 if numbers >= 5 else 1
            signals.append(f"reasoning:numbers×{numbers}")
        mlits = [lit for lit in _MATH_LITERALS if lit in low]
        if mlits:
            reasoning += 2
            signals.append(f"reasoning:math={'|'.join(mlits)}")
        if numbers >= 2 and low.rstrip().endswith("?") and ". " in low:
            # Quantities stated, then a question about them: a word problem.
            reasoning += 2
            signals.append("reasoning:word-problem")
    if low.count(" than ") >= 2:
        reasoning += 3   # a chain of comparisons to order ("A is taller than B, B than C")
        signals.append("reasoning:comparison-chain")
    phrases, cphr = _phrase_hits(low, wset)
    if phrases:
        reasoning += 2 * min(len(phrases), 2)
        signals.append(f"reasoning:phrase={'|'.join(phrases)}")

    complex_ = 0
    if n_words > 20:
        complex_ += 3 if n_words > 100 else 2 if n_words > 45 else 1
        signals.append(f"complex:length={n_words}w")
    # Commas and colons enumerate parts in prose; in code they are just syntax.
    parts = 0 if code >= 2 else low.count(",") + low.count(";") + low.count(":")
    if parts >= 3:
        complex_ += 2 if parts >= 6 else 1
        signals.append(f"complex:parts×{parts + 1}")
    if "word" in low and _LENGTH_WORD_RE.search(low):
        cphr.append("N-word length")
    if cphr:
        complex_ += 2 * min(len(cphr), 2)
        signals.append(f"complex:phrase={'|'.join(cphr)}")

    scores = _word_scores(wset, signals,
                          {"code": code, "reasoning": reasoning, "complex": complex_})
    scores["code"] += code
    scores["reasoning"] += reasoning
    if numbers == 2 and (phrases or scores["reasoning"] > reasoning):
        # Two quantities beside a maths word or question ("GCD of 84 and 126").
        scores["reasoning"] += 1
        signals.append("reasoning:numbers×2")
    scores["complex"] += complex_
    label, best = "simple", 0
    for name in _PRIORITY:
        if scores[name] >= _THRESHOLD and scores[name] > best:
            label, best = name, scores[name]
    if label == "simple":
        signals.append(f"simple:below-thresholds,{n_words}w")
    return Classification(label, tuple(signals), tuple(scores.items()))
