"""gateway/bpe.py counts exactly what o200k_base counts, in a fraction of the memory.

The reference is bpe-openai's Rust tokenizer (the tables billing used before); every
text of a varied corpus (Latin, CJK, Cyrillic, Arabic, Devanagari, Thai, emoji with
joiners and modifiers, code, whitespace runs, numbers in several scripts, contractions,
special-token spellings, random strings over tricky alphabets) must give the same
token ids, and decoding them must give the text back.
"""
from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from gateway import bpe, tokenizer

REPO = Path(__file__).resolve().parents[2]

FIXED = [
    "Hello, world! The quick brown fox jumps over the lazy dog.",
    "I'm sure they'll say we've done it; she'd've known. DON'T STOP. IT'S HE'LL 'S ſ'S",
    "日本語のテキストです。中文文本，包含标点符号。한국어 텍스트도 있습니다.",
    "Привет, мир! Ελληνικά κείμενα. עברית: مرحبا بالعالم. हिन्दी पाठ। ภาษาไทยง่ายๆ",
    "emoji 😀😃😄 👨‍👩‍👧‍👦 🏳️‍🌈 flags 🇫🇷🇯🇵 skin 👍🏽 ❤️ keycap 1️⃣",
    "def f(x):\n    return x**2 + 3*x - 1  # comment\n\n\tif (a && b) { c[i] = d->e; }\r\n",
    "numbers 1234567890 3.14159 1,000,000 ٣٤٥ ١٢٣٤ ১২৩ ①②③ ½ Ⅻ",
    "   leading spaces\n\n\n   \t trailing   \n",
    "<|endoftext|> special <|endofprompt|> spellings count as text",
    "é combining é क्ष Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǵ̟̜o",
    "https://example.com/a/b?query=1&x=y#frag /usr/local/bin// C:\\Windows\\",
    "ÀÉÎÕÜ àéîõü ÇçÑñ ßẞ İı ǅǈ ΣΑΣ σας",
    '{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}',
    "SELECT * FROM t WHERE a <> 'x' AND b >= 3;\n-- done",
    "\u00a0nbsp\u2003em\u3000ideographic\u200bzwsp\ufeffbom\x0b\x0c\x1c",
    "a" * 1000,
    "ab " * 300,
    "x" * 5000 + "y",
    "😀" * 300,
    " " * 700 + "x",
    "\n" * 50 + "a",
    "日本" * 400,
    "Ab" * 600 + "'ll",
    "",
]


@pytest.fixture(scope="module")
def reference():
    bindings = pytest.importorskip("bpe_openai._bindings")
    return bindings.tokenizer_for_encoding("o200k_base")


@pytest.fixture(scope="module")
def encoder():
    return tokenizer.encoding()


def _corpus() -> list[str]:
    rng = random.Random(18)
    out = list(FIXED)
    alphabet = "abcXYZ 日本😀\n\r\t'.,!?-_/0123456789éü€\u0301ſ\u200d\U0001F3FD"
    out += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 120))) for _ in range(1500)]
    for _ in range(300):   # anywhere in the BMP and the supplementary planes but surrogates
        cps = (rng.choice((rng.randint(0x20, 0xD7FF), rng.randint(0xE000, 0x2FFFF)))
               for _ in range(rng.randint(1, 60)))
        out.append("".join(map(chr, cps)))
    for path in ("README.md", "gateway/bpe.py", "gateway/engine/pipeline.py"):
        out.append((REPO / path).read_text())
    return out


def test_same_tokens_as_o200k(reference, encoder):
    for text in _corpus():
        got = encoder.encode(text)
        assert got == list(reference.encode(text)), repr(text[:80])
        assert encoder.count(text) == len(got) == tokenizer.count_text(text)
        assert encoder.decode(got) == text


def test_long_pieces_merge_the_same_with_the_heap(reference):
    """Both merge loops give tiktoken's answer around the size where they switch."""
    vocab = tokenizer.encoding().vocab
    rng = random.Random(5)
    for n in (2, 3, 17, 255, 256, 257, 900):
        for alphabet in ("a", "ab", "aab", "é日", "xyzw"):
            b = "".join(rng.choice(alphabet) for _ in range(n)).encode()
            small = bpe._merge_small(b, vocab.rank)
            assert small == bpe._merge_heap(b, vocab.rank)
            assert list(small) == list(reference.encode(b.decode()))


def test_lone_surrogates_and_bad_ids(encoder):
    assert encoder.encode("a\ud800b") == encoder.encode("a\ufffdb")
    assert encoder.decode([199_999]) == "<|endoftext|>"
    for bad in (-1, 199_998, 10**9):
        with pytest.raises(KeyError):
            encoder.decode([bad])


def test_tables_cost_a_fraction_of_the_memory():
    """Loading the counter grows the process by well under 30 MB, and never imports
    bpe-openai's 74 MB extension."""
    code = (
        "import sys\n"
        "def rss():\n"
        "    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmRSS'))\n"
        "from gateway import tokenizer\n"
        "before = rss()\n"
        "assert tokenizer.count_text('warm up, 日本語 😀') > 0\n"
        "print(rss() - before, 'bpe_openai._bindings' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=60, check=True).stdout.split()
    assert int(out[0]) < 30_000, out
    assert out[1] == "False"


def test_threads_asking_together_build_the_tables_once():
    """Streams cut together are billed together, each from a worker thread."""
    import threading
    import time
    built = []

    def build():
        built.append(1)
        time.sleep(0.05)   # long enough for every thread to arrive while it runs
        return object()

    once = tokenizer._Once(build)
    got = []
    threads = [threading.Thread(target=lambda: got.append(once())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and len({id(g) for g in got}) == 1 and len(got) == 8
