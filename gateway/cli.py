"""`prism serve | tui | simulate | keys ... | wallet ...`: the one console entry point.

Key and wallet commands write to the SQLite store directly (WAL lets them run beside a
live gateway); the gateway picks new keys up on first use and honours revocations made
here within `store.key_cache_ttl` seconds.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys

from gateway.config import ConfigError, load_config


def _load(path: str):
    try:
        return load_config(path)
    except ConfigError as exc:
        _print_config_error(exc)
        raise SystemExit(2) from None


def _print_config_error(exc: ConfigError) -> None:
    print("prism: invalid configuration:", file=sys.stderr)
    for problem in exc.problems:
        print(f"  - {problem}", file=sys.stderr)


def _print_dev_key(key: str) -> None:
    print("=" * 72, flush=True)
    print("Fresh store: created a development key (shown once, keep it):", flush=True)
    print(f"  {key}", flush=True)
    print("=" * 72, flush=True)


def _raise_fd_limit() -> None:
    """Every open stream holds two sockets (client and upstream); a soft limit of 1024,
    still common, would refuse connections at ~500 streams. Raise it to the hard limit."""
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        if soft != resource.RLIM_INFINITY and soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ImportError, ValueError, OSError):
        pass   # not POSIX, or not allowed: serve with what we have


def _fewer_malloc_arenas() -> None:
    """glibc gives each thread that allocates its own malloc arena, which keeps its
    high-water mark resident; the store writer and the worker threads that count tokens
    would each hold one. Two arenas serve this process's few threads as well."""
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, 2)     # M_ARENA_MAX
    except (OSError, AttributeError):
        pass   # not glibc: nothing to tune


def _skip_unused_modules(config) -> None:
    """Keep two libraries that other libraries load eagerly out of a serving process
    that will never use them: peewee imports psycopg whenever it is installed (about
    9 MB resident; a store on SQLite never touches it), and httpx imports its own
    command-line tool with click, rich and pygments (about 3 MB). A None entry in
    sys.modules makes those imports fail as if the package were absent, which both
    libraries handle."""
    if not config.store.url.startswith(("postgres://", "postgresql://")) \
            and not config.cache.url:
        sys.modules.setdefault("psycopg", None)   # type: ignore[arg-type]
    sys.modules.setdefault("httpx._main", None)   # type: ignore[arg-type]


def cmd_serve(args) -> int:
    import trio

    config = _load(args.config)
    if "peewee" not in sys.modules:
        _skip_unused_modules(config)
    from gateway.server import admin_token_from_env, run_gateway, signal_trigger
    _raise_fd_limit()
    _fewer_malloc_arenas()
    workers = args.workers or config.server.workers
    worker = args.worker_fd is not None
    if workers > 1 and not worker:
        from gateway.shared.workers import supervise
        return supervise(config, os.path.abspath(args.config), args.host or config.server.host,
                         config.server.port if args.port is None else args.port, workers,
                         _print_dev_key)
    control_path = None
    if worker:
        # The parent made the dev key; each worker has a dashboard socket of its own.
        config = dataclasses.replace(
            config, bootstrap=dataclasses.replace(config.bootstrap, dev_key=False))
        if args.worker_index:
            control_path = config.resolve_path(config.control.socket) + f".{args.worker_index}"

    async def main() -> None:
        with signal_trigger() as shutdown:
            async def started(task_status=trio.TASK_STATUS_IGNORED):
                await run_gateway(config, host=args.host, port=args.port,
                                  admin_token=admin_token_from_env(), shutdown_trigger=shutdown,
                                  on_dev_key=_print_dev_key,
                                  config_path=os.path.abspath(args.config),
                                  listen_fd=args.worker_fd, workers=workers,
                                  control_path=control_path, task_status=task_status)
            async with trio.open_nursery() as nursery:
                url = await nursery.start(started)
                if not worker:
                    print(f"prism: serving on {url} (Ctrl-C to stop)", flush=True)

    try:
        trio.run(main)
    except BaseException as exc:
        if _only(exc, KeyboardInterrupt):    # a second Ctrl-C cut the drain short
            print("prism: interrupted; in-flight requests were cut off", file=sys.stderr)
            return 130
        cause = _startup_failure(exc)
        if cause is None:
            raise
        if isinstance(cause, ConfigError):
            _print_config_error(cause)
            return 2
        where = "" if isinstance(cause, OSError) else \
            f" (store {config.store_target()})"
        print(f"prism: cannot start{where}: {cause}", file=sys.stderr)
        return 1
    return 0


def _only(exc: BaseException, kind: type[BaseException]) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        match, rest = exc.split(kind)
        return match is not None and rest is None
    return isinstance(exc, kind)


def _startup_failure(exc: BaseException) -> BaseException | None:
    """The port-in-use, unopenable-store or unbuildable-provider error behind a failed
    start, if that is all that went wrong. Trio nurseries wrap errors in exception
    groups, so a bare `except OSError` never matched and the operator got a traceback."""
    from store import StoreError
    kinds = (OSError, StoreError, ConfigError)
    if isinstance(exc, BaseExceptionGroup):
        match, rest = exc.split(kinds)
        if match is None or rest is not None:
            return None
        while isinstance(match, BaseExceptionGroup):
            match = match.exceptions[0]
        return match
    return exc if isinstance(exc, kinds) else None


def cmd_tui(args) -> int:
    """The dashboard. It talks only to the gateway's control socket, never the store."""
    if args.socket:
        path = args.socket
    else:
        config = _load(args.config)
        path = config.resolve_path(config.control.socket)
    from textual.logging import TextualHandler

    from tui.app import PrismApp
    # Log lines written to the terminal would tear the dashboard's screen.
    logging.getLogger().handlers[:] = [TextualHandler()]
    PrismApp(path).run()
    return 0


def cmd_simulate(args) -> int:
    import trio

    from gateway.simulator.core import SimOptions
    from gateway.simulator.server import main_simulate
    trio.run(main_simulate, args.host, args.port,
             SimOptions(chunk_chars=args.chunk_chars, chunk_delay=args.chunk_delay))
    return 0


def _db(args):
    import store
    config = _load(args.config)
    return config, store.open_database(config.store_target())


def cmd_keys(args) -> int:
    import store
    from gateway.billing.pricing import format_usd, usd_to_micros
    config, db = _db(args)
    try:
        if args.keys_cmd == "create":
            if not math.isfinite(args.credits_usd) or args.credits_usd < 0:
                print("prism: --credits-usd must be a finite amount >= 0", file=sys.stderr)
                return 2
            if args.plan is not None and args.plan not in {p.id for p in config.plans}:
                print(f"prism: unknown plan {args.plan!r} (not in [[plans]] of {args.config})",
                      file=sys.stderr)
                return 2
            account, key, plaintext = store.create_account_with_key(
                db, args.name, usd_to_micros(args.credits_usd), plan=args.plan)
            print(json.dumps({"id": key.id, "account_id": account.id, "name": key.name,
                              "key": plaintext, "credits_usd": format_usd(usd_to_micros(args.credits_usd))},
                             indent=2))
        elif args.keys_cmd == "list":
            for k in store.list_keys(db):
                state = "revoked" if k.revoked_at is not None else "active"
                print(f"{k.id}  {k.prefix}...  {state:8}  {k.account_id}  {k.name}")
        elif args.keys_cmd == "revoke":
            if not store.revoke_key(db, args.key_id):
                print(f"prism: no active key {args.key_id}", file=sys.stderr)
                return 1
            print(f"revoked {args.key_id}")
    finally:
        db.close()
    return 0


def cmd_wallet(args) -> int:
    import store
    from gateway.billing.pricing import format_usd, usd_to_micros
    if args.wallet_cmd == "adjust" and not (math.isfinite(args.usd) and usd_to_micros(args.usd)):
        print("prism: --usd must be a finite, non-zero amount (at least 0.000001)",
              file=sys.stderr)
        return 2
    _, db = _db(args)
    try:
        key = store.get_key(db, args.key_id)
        if key is None:
            print(f"prism: no key {args.key_id}", file=sys.stderr)
            return 1
        if args.wallet_cmd == "show":
            w = store.get_wallet(db, key.account_id)
            print(f"balance ${format_usd(w.balance_micros)}  held ${format_usd(w.held_micros)}")
            return 0
        amount = usd_to_micros(args.usd)
        try:
            if amount > 0:
                bal = store.top_up(db, key.account_id, amount, args.reason)
            else:
                bal = store.adjust(db, key.account_id, amount, args.reason)
        except store.WouldGoNegative:
            print("prism: that correction would take the wallet below zero", file=sys.stderr)
            return 1
        print(f"balance ${format_usd(bal)}")
    finally:
        db.close()
    return 0


def cmd_store(args) -> int:
    """`prism store migrate --to URL`: copy this config's store into an empty one."""
    import store
    from store.copy import CopyMismatch, TargetNotEmpty, copy_store
    config = _load(args.config)
    source = store.open_database(config.store_target())
    try:
        target = store.open_database(args.to)
    except store.StoreError as exc:
        source.close()
        print(f"prism: cannot open the target store: {exc}", file=sys.stderr)
        return 1
    try:
        report = copy_store(source, target)
    except (TargetNotEmpty, CopyMismatch) as exc:
        print(f"prism: {exc}", file=sys.stderr)
        return 1
    finally:
        source.close()
        target.close()
    for table, n in report.rows.items():
        print(f"{table:20} {n:>10} rows")
    print(f"verified: row counts, {report.wallets} wallets' balances and ledger sums "
          f"(total {report.ledger_total_micros} micro-USD), money audit clean")
    print(f"now set [store] url = \"{args.to}\" and restart the gateway")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="prism", description="Prism LLM API gateway")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("serve", help="run the gateway")
    s.add_argument("--config", default="prism.toml")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--workers", type=int, default=0,
                   help="processes sharing the port (default: server.workers, 1)")
    # Set by the --workers parent for each worker it starts.
    s.add_argument("--worker-fd", type=int, help=argparse.SUPPRESS)
    s.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    s.set_defaults(func=cmd_serve)

    st = sub.add_parser("store", help="store maintenance")
    sts = st.add_subparsers(dest="store_cmd", required=True)
    m = sts.add_parser("migrate", help="copy the store into an empty PostgreSQL database")
    m.add_argument("--config", default="prism.toml", help="the config naming the source store")
    m.add_argument("--to", required=True, help="postgresql://user@host/db (must be empty)")
    m.set_defaults(func=cmd_store)

    s = sub.add_parser("tui", help="the operator dashboard (talks to a running gateway)")
    s.add_argument("--config", default="prism.toml", help="where to find control.socket")
    s.add_argument("--socket", help="control socket path (overrides the config)")
    s.set_defaults(func=cmd_tui)

    s = sub.add_parser("simulate", help="run the upstream simulator over HTTP")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=9100)
    s.add_argument("--chunk-chars", type=int, default=8)
    s.add_argument("--chunk-delay", type=float, default=0.0)
    s.set_defaults(func=cmd_simulate)

    k = sub.add_parser("keys", help="create, list and revoke API keys")
    k.add_argument("--config", default="prism.toml")
    ks = k.add_subparsers(dest="keys_cmd", required=True)
    c = ks.add_parser("create")
    c.add_argument("--name", required=True)
    c.add_argument("--credits-usd", type=float, default=0.0)
    c.add_argument("--plan")
    ks.add_parser("list")
    r = ks.add_parser("revoke")
    r.add_argument("key_id")
    k.set_defaults(func=cmd_keys)

    w = sub.add_parser("wallet", help="show or adjust the wallet behind a key")
    w.add_argument("--config", default="prism.toml")
    ws = w.add_subparsers(dest="wallet_cmd", required=True)
    sh = ws.add_parser("show")
    sh.add_argument("key_id")
    ad = ws.add_parser("adjust")
    ad.add_argument("key_id")
    ad.add_argument("--usd", type=float, required=True, help="positive credits, negative corrects")
    ad.add_argument("--reason", required=True)
    w.set_defaults(func=cmd_wallet)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx logs every upstream request at INFO: ~0.1 ms and one line per call.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    from store import StoreError
    try:
        return args.func(args)
    except StoreError as exc:  # cannot open the file, locked past busy_timeout, ...
        print(f"prism: store error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C before `serve` could install its own handler
        print("prism: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
