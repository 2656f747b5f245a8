"""prism.toml -> Config: the shipped file loads, and every kind of mistake is refused
with a ConfigError whose message names the key path of the mistake."""
from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from gateway.config import Config, ConfigError, load_config, parse_config

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "prism.toml"

# A small, stable configuration for the mistake cases (the shipped file grows, so its
# indexes are not something to pin tests to).
BASE_TOML = """
[server]
port = 8080
[store]
path = "prism.db"
[bootstrap]
dev_key = true
dev_key_credits_usd = 5.0

[[providers]]
id = "sim"
kind = "simulator"
images = true

[[models]]
id = "prism-mini"
aliases = ["mini"]
tier = "eco"
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.60
capabilities = ["chat", "tools"]
routes = [{ provider = "sim", model = "sim-mini" }]

[[models]]
id = "prism-standard"
aliases = ["standard"]
input_usd_per_mtok = 2.50
output_usd_per_mtok = 10.00
routes = [{ provider = "sim", model = "sim-standard" }]

[[models]]
id = "prism-max"
tier = "sport"
input_usd_per_mtok = 15.0
output_usd_per_mtok = 75.0
routes = [{ provider = "sim", model = "sim-max" }]

[[models]]
id = "prism-image"
image_usd = 0.04
capabilities = ["images"]
routes = [{ provider = "sim", model = "sim-image" }]

[[plans]]
id = "pro"
window_5h_usd = 5.0
"""


def _base_data() -> dict:
    return tomllib.loads(BASE_TOML)


def _problems(mutate) -> tuple[ConfigError, list[str]]:
    data = _base_data()
    mutate(data)
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return info.value, info.value.problems


# ---------------------------------------------------------------- the shipped file

def test_shipped_prism_toml_loads_and_runs_on_the_simulator():
    cfg = load_config(SHIPPED)
    assert isinstance(cfg, Config)
    assert cfg.base_dir == str(REPO)
    assert cfg.resolve_path(cfg.store.path) == str(REPO / "prism.db")
    by_id = {m.id: m for m in cfg.models}
    mini = by_id["prism-mini"]
    assert "mini" in mini.aliases
    assert mini.input_usd_per_mtok is not None and mini.output_usd_per_mtok is not None
    # runs with no edits and no keys: every route of an enabled model reaches a declared,
    # enabled provider, and those are the in-process simulator
    providers = {p.id: p for p in cfg.providers}
    for m in cfg.models:
        if not m.enabled:
            continue
        for r in m.routes:
            assert r.provider in providers, (m.id, r.provider)
        assert any(providers[r.provider].enabled and providers[r.provider].kind == "simulator"
                   for r in m.routes), m.id
    assert cfg.bootstrap.dev_key is True


def test_base_config_is_valid():
    cfg = parse_config(_base_data())
    assert [m.id for m in cfg.models] == ["prism-mini", "prism-standard", "prism-max",
                                          "prism-image"]


def test_frozen_sections():
    cfg = load_config(SHIPPED)
    with pytest.raises(AttributeError):
        cfg.server.port = 1  # type: ignore[misc]


def test_empty_file_gives_defaults():
    cfg = parse_config({})
    assert cfg.server.port == 8080 and cfg.providers == () and cfg.models == ()


# ---------------------------------------------------------------- each mistake, named

def _set(path, value):
    """A mutation that sets data[a][b]... = value (path as a tuple of keys/indexes)."""
    def mutate(data):
        node = data
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
    return mutate


def _pop(path):
    def mutate(data):
        node = data
        for k in path[:-1]:
            node = node[k]
        del node[path[-1]]
    return mutate


CASES = [
    # (label, mutation, key path that the message must name, words it must contain)
    ("unknown top-level key", _set(("bogus",), 1), "bogus", "unknown key"),
    ("unknown section key", _set(("server", "prot"), 80), "server.prot", "unknown key"),
    ("unknown route key", _set(("models", 0, "routes", 0, "weight"), 2),
     "models[0].routes[0].weight", "unknown key"),
    ("string for integer", _set(("server", "port"), "8080"), "server.port", "integer"),
    ("bool for integer", _set(("server", "port"), True), "server.port", "integer"),
    ("string for bool", _set(("providers", 0, "images"), "yes"), "providers[0].images",
     "true or false"),
    ("string for number", _set(("models", 1, "input_usd_per_mtok"), "2.5"),
     "models[1].input_usd_per_mtok", "number"),
    ("table for array", _set(("models", 0, "routes"), {"provider": "sim", "model": "m"}),
     "models[0].routes", "array"),
    ("string for array", _set(("models", 0, "aliases"), "mini"), "models[0].aliases",
     "array"),
    ("route names unknown provider", _set(("models", 0, "routes", 0, "provider"), "openai"),
     "models[0].routes[0].provider", "unknown provider"),
    ("duplicate alias", _set(("models", 1, "aliases"), ["standard", "mini"]),
     "models[1].aliases[1]", "already used"),
    ("alias equal to another model's id", _set(("models", 2, "aliases"), ["prism-mini"]),
     "models[2].aliases[0]", "already used"),
    ("duplicate model id", _set(("models", 1, "id"), "prism-mini"), "models[1].id",
     "already used"),
    ("reserved id any", _set(("models", 0, "id"), "any"), "models[0].id", "reserved"),
    ("reserved alias auto", _set(("models", 1, "aliases"), ["standard", "auto"]),
     "models[1].aliases[1]", "reserved"),
    ("empty model id", _set(("models", 0, "id"), ""), "models[0].id", "empty"),
    ("missing model id", _pop(("models", 0, "id")), "models[0].id", "required"),
    ("missing routes", _pop(("models", 1, "routes")), "models[1].routes", "required"),
    ("missing route model", _pop(("models", 0, "routes", 0, "model")),
     "models[0].routes[0].model", "required"),
    ("missing provider kind", _pop(("providers", 0, "kind")), "providers[0].kind",
     "required"),
    ("unknown provider kind", _set(("providers", 0, "kind"), "bedrock"), "providers[0].kind",
     "not one of"),
    ("unknown tier", _set(("models", 0, "tier"), "turbo"), "models[0].tier", "not one of"),
    ("unknown capability", _set(("models", 0, "capabilities"), ["chat", "telepathy"]),
     "models[0].capabilities", "telepathy"),
    ("negative price", _set(("models", 0, "output_usd_per_mtok"), -1.0),
     "models[0].output_usd_per_mtok", "negative"),
    ("nan price", _set(("models", 0, "input_usd_per_mtok"), float("nan")),
     "models[0].input_usd_per_mtok", "finite"),
    ("infinite price", _set(("models", 3, "image_usd"), float("inf")), "models[3].image_usd",
     "finite"),
    ("no routes", _set(("models", 0, "routes"), []), "models[0].routes", "at least one"),
    ("plan names unknown model", _set(("plans", 0, "models"), ["prism-nope"]),
     "plans[0].models", "unknown model"),
    ("negative dev credits", _set(("bootstrap", "dev_key_credits_usd"), -1.0),
     "bootstrap.dev_key_credits_usd", "negative"),
    ("zero sweep interval", _set(("store", "sweep_interval"), 0), "store.sweep_interval",
     "positive"),
    ("zero hold ttl", _set(("store", "hold_ttl_seconds"), 0), "store.hold_ttl_seconds",
     "positive"),
    ("negative key cache ttl", _set(("store", "key_cache_ttl"), -1.0), "store.key_cache_ttl",
     "negative"),
    ("zero provider timeout", _set(("providers", 0, "read_timeout"), 0),
     "providers[0].read_timeout", "positive"),
    ("port out of range", _set(("server", "port"), 70000), "server.port", "0..65535"),
    ("zero body limit", _set(("server", "max_body_bytes"), 0), "server.max_body_bytes",
     "positive"),
    ("section not a table", _set(("server",), 5), "server", "table"),
]


@pytest.mark.parametrize("label,mutate,key_path,words", CASES, ids=[c[0] for c in CASES])
def test_mistake_is_named_by_key_path(label, mutate, key_path, words):
    err, problems = _problems(mutate)
    matching = [p for p in problems if p.startswith(key_path + ":")]
    assert matching, f"no problem starts with {key_path!r}: {problems}"
    assert any(words in p for p in matching), problems
    # the exception's own message carries the key path too (that is what the CLI shows)
    assert key_path in str(err)


def test_missing_required_key_is_reported_once():
    _, problems = _problems(_pop(("models", 0, "id")))
    assert problems == ["models[0].id: required key is missing"]


def test_every_problem_is_reported_not_just_the_first():
    def mutate(data):
        data["server"]["port"] = "x"
        data["models"][0]["routes"][0]["provider"] = "nope"  # semantic, needs valid shape
        data["store"]["bogus"] = 1
    _, problems = _problems(mutate)
    assert any(p.startswith("server.port:") for p in problems)
    assert any(p.startswith("store.bogus:") for p in problems)

    def mutate2(data):
        data["models"][0]["routes"][0]["provider"] = "nope"
        data["models"][1]["id"] = "any"
    _, problems = _problems(mutate2)
    assert len(problems) == 2


def test_valid_mutations_are_accepted():
    data = _base_data()
    data["models"][0]["aliases"] = ["mini", "small"]
    data["store"]["key_cache_ttl"] = 0.5
    data["server"]["port"] = 0
    cfg = parse_config(data)
    assert cfg.models[0].aliases == ("mini", "small")
    assert cfg.store.key_cache_ttl == 0.5
    assert cfg.models[0].input_usd_per_mtok == 0.15
    data["models"][0]["input_usd_per_mtok"] = 1      # integers are fine for numbers
    assert parse_config(data).models[0].input_usd_per_mtok == 1.0


# ---------------------------------------------------------------- files and paths

def test_relative_store_path_resolves_against_the_file_folder(tmp_path, monkeypatch):
    conf_dir = tmp_path / "etc" / "prism"
    conf_dir.mkdir(parents=True)
    (conf_dir / "prism.toml").write_text('[store]\npath = "data/prism.db"\n', encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(os.path.relpath(conf_dir / "prism.toml", elsewhere))
    assert cfg.resolve_path(cfg.store.path) == str(conf_dir / "data" / "prism.db")
    assert cfg.resolve_path("/abs/other.db") == "/abs/other.db"


def test_file_problems_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\nport = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load_config(bad)
    assert str(bad) in str(info.value)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path)                       # a directory
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'[server]\nhost = "caf\xe9"\n')
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(latin)


def test_error_message_names_the_file(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text("[server]\nprot = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(f)
    assert str(info.value).startswith(str(f) + ": server.prot: unknown key")


# ---------------------------------------------------------------- the CLI

def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("PRISM_ADMIN_TOKEN", None)
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def test_serve_with_bad_config_exits_nonzero_naming_the_problem(tmp_path):
    data = BASE_TOML.replace('routes = [{ provider = "sim", model = "sim-mini" }]',
                             'routes = [{ provider = "nope", model = "sim-mini" }]', 1)
    assert "nope" in data
    bad = tmp_path / "bad.toml"
    bad.write_text(data, encoding="utf-8")
    proc = _cli("serve", "--config", str(bad), "--port", "0", cwd=tmp_path)
    assert proc.returncode != 0
    assert "invalid configuration" in proc.stderr
    assert "models[0].routes[0].provider: unknown provider 'nope'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "serving on" not in proc.stdout
    assert not (tmp_path / "prism.db").exists()     # refused before touching the store


def test_serve_with_missing_config_file_exits_nonzero(tmp_path):
    proc = _cli("serve", "--config", str(tmp_path / "nope.toml"), cwd=tmp_path)
    assert proc.returncode != 0
    assert "file not found" in proc.stderr and "Traceback" not in proc.stderr


def test_serve_with_unopenable_store_exits_cleanly(tmp_path):
    cfg = tmp_path / "p.toml"
    cfg.write_text('[store]\npath = "no/such/dir/prism.db"\n', encoding="utf-8")
    proc = _cli("serve", "--config", str(cfg), "--port", "0", cwd=tmp_path)
    assert proc.returncode == 1
    assert "prism: cannot start" in proc.stderr and "prism.db" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_serve_on_a_busy_port_exits_cleanly(tmp_path):
    import socket
    cfg = tmp_path / "p.toml"
    cfg.write_text('[bootstrap]\ndev_key = false\n', encoding="utf-8")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = _cli("serve", "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port),
                    cwd=tmp_path)
    assert proc.returncode == 1
    assert "prism: cannot start" in proc.stderr and "in use" in proc.stderr
    assert "Traceback" not in proc.stderr
