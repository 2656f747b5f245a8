"""The live feed between gateway processes: every process's finished requests reach the
dashboards attached to any of them.

A dashboard connects to one process's control socket. When the store is shared, that
process alone sees a fraction of the traffic, so each process also sends its request
records over a bus that every process listens to, and hands the records it receives
from the others to its own dashboards, tagged with the node that served them:

    Redis pub/sub when `[cache] url` is set, else PostgreSQL LISTEN/NOTIFY when the store
    is PostgreSQL; several `--workers` on one SQLite file have no bus (each worker's
    dashboard shows that worker).

Records leave a process only while some process has a dashboard attached (`watched`,
read from the cluster's heartbeat rows), batched every FLUSH_S, so the request path pays
one non-blocking channel send and nothing when nobody watches.
"""
from __future__ import annotations

import hashlib
import json
import logging
from typing import Any, Callable, Protocol

import trio

log = logging.getLogger("prism.cluster")

FLUSH_S = 0.1
BATCH = 200             # records per message at most
QUEUE = 4096            # records waiting to be sent; beyond this they are dropped
LISTEN_POLL_S = 0.5     # how long a listening thread blocks before checking for stop
PG_PAYLOAD_BYTES = 7000  # NOTIFY payloads must stay under 8000 bytes
REDIS_PAYLOAD_BYTES = 256 * 1024
CHANNEL = "prism_live"


class Transport(Protocol):
    def publish(self, payloads: list[bytes]) -> None: ...
    def listen(self, deliver: Callable[[bytes], None], stopped: Callable[[], bool]) -> None: ...
    def close(self) -> None: ...


class RedisTransport:
    """One PUBLISH per batch on `<prefix>live`; a pub/sub connection per process."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis
        self._redis = redis.Redis.from_url(url)
        self._channel = prefix + "live"

    def publish(self, payloads: list[bytes]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for payload in payloads:
            pipe.publish(self._channel, payload)
        pipe.execute()

    def listen(self, deliver: Callable[[bytes], None], stopped: Callable[[], bool]) -> None:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(self._channel)
        try:
            while not stopped():
                msg = pubsub.get_message(timeout=LISTEN_POLL_S)
                if msg is not None and msg.get("type") == "message":
                    deliver(msg["data"])
        finally:
            pubsub.close()

    def close(self) -> None:
        self._redis.close()


def _pg_channel(conn: Any) -> str:
    """Channels are per database, stores are per schema: one channel per store."""
    db, schema = conn.execute("SELECT current_database(), current_schema()").fetchone()
    return f"{CHANNEL}_{hashlib.sha1(f'{db}/{schema}'.encode()).hexdigest()[:16]}"


class PostgresTransport:
    """pg_notify on the store's channel; payloads split under NOTIFY's size limit."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: Any = None
        self._channel = ""

    def _connection(self) -> Any:
        import psycopg
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._url, autocommit=True)
            self._channel = _pg_channel(self._conn)
        return self._conn

    def publish(self, payloads: list[bytes]) -> None:
        conn = self._connection()
        for payload in payloads:
            conn.execute("SELECT pg_notify(%s, %s)", (self._channel, payload.decode()))

    def listen(self, deliver: Callable[[bytes], None], stopped: Callable[[], bool]) -> None:
        import psycopg
        with psycopg.connect(self._url, autocommit=True) as conn:
            conn.execute(f"LISTEN {_pg_channel(conn)}")
            while not stopped():
                for note in conn.notifies(timeout=LISTEN_POLL_S):
                    deliver(note.payload.encode())

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def transport_for(cache_url: str, prefix: str, store_url: str) -> Transport | None:
    if cache_url:
        return RedisTransport(cache_url, prefix)
    if store_url.startswith(("postgresql://", "postgres://")):
        return PostgresTransport(store_url)
    return None


def pack(node: str, records: list[dict[str, Any]], limit: int) -> list[bytes]:
    """Records as JSON messages `{"node", "records"}`, each at most `limit` bytes where
    one record allows it (a bigger record goes alone)."""
    out: list[bytes] = []
    head = json.dumps({"node": node, "records": []})[:-3].encode()   # b'{"node": ..., "records": '
    batch: list[bytes] = []
    size = len(head) + 3

    def flush() -> None:
        if batch:
            out.append(head + b"[" + b",".join(batch) + b"]}")

    for record in records:
        item = json.dumps(record, default=str, separators=(",", ":")).encode()
        if len(item) > limit - len(head) - 3:
            continue   # one record past the limit: the dashboard of its own node has it
        if batch and (size + len(item) + 1 > limit or len(batch) >= BATCH):
            flush()
            batch, size = [], len(head) + 3
        batch.append(item)
        size += len(item) + 1
    flush()
    return out


def unpack(payload: bytes) -> tuple[str, list[dict[str, Any]]]:
    """The sender and its records; ValueError for anything that is not ours."""
    msg = json.loads(payload)
    if not isinstance(msg, dict) or not isinstance(msg.get("node"), str) \
            or not isinstance(msg.get("records"), list):
        raise ValueError("not a live-feed message")
    return msg["node"], [r for r in msg["records"] if isinstance(r, dict)]


class LiveFeed:
    """This process's end of the bus. `observe` is a request observer; `attach` gives
    it the local dashboards' hub (its `publish` and `subscribers`)."""

    def __init__(self, transport: Transport, node_id: str, *,
                 limit: int = PG_PAYLOAD_BYTES) -> None:
        self.node_id = node_id
        self.watched = False        # some process has a dashboard attached
        self.sent = 0
        self.received = 0
        self.dropped = 0
        self._transport = transport
        self._limit = limit
        self._send, self._receive = trio.open_memory_channel[dict[str, Any]](QUEUE)
        self._hub: Any = None
        self._stop = False

    def attach(self, hub: Any) -> None:
        self._hub = hub

    def detach(self) -> None:
        self._hub = None

    @property
    def watching(self) -> bool:
        """A dashboard is attached to this process (told to the others by heartbeat)."""
        return self._hub is not None and self._hub.subscribers > 0

    def stats(self) -> dict[str, Any]:
        return {"watched": self.watched, "sent": self.sent, "received": self.received,
                "dropped": self.dropped}

    def observe(self, record: dict[str, Any]) -> None:
        """A request this process finished: never blocks, never raises."""
        if not self.watched:
            return
        try:
            self._send.send_nowait(record)
        except trio.WouldBlock:
            self.dropped += 1

    def _deliver(self, payload: bytes) -> None:
        try:
            node, records = unpack(payload)
        except ValueError:
            log.warning("ignored a live-feed message that is not Prism's")
            return
        if node == self.node_id:
            return
        hub = self._hub
        for record in records:
            self.received += 1
            if hub is not None:
                hub.publish({**record, "node": node})

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        self._stop = False
        token = trio.lowlevel.current_trio_token()

        def deliver(payload: bytes) -> None:   # on the listening thread
            try:
                trio.from_thread.run_sync(self._deliver, payload, trio_token=token)
            except trio.RunFinishedError:
                self._stop = True

        async def listen() -> None:
            while not self._stop:
                try:
                    await trio.to_thread.run_sync(self._transport.listen, deliver,
                                                  lambda: self._stop, abandon_on_cancel=True)
                except Exception:
                    log.exception("live feed: listening failed; retrying in 1 s")
                await trio.sleep(1.0)

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(listen)
                nursery.start_soon(self._flush_forever)
                task_status.started()
        finally:
            self._stop = True
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._transport.close)

    async def _flush_forever(self) -> None:
        while True:
            first = await self._receive.receive()
            await trio.sleep(FLUSH_S)
            records = [first]
            while len(records) < QUEUE:
                try:
                    records.append(self._receive.receive_nowait())
                except trio.WouldBlock:
                    break
            payloads = pack(self.node_id, records, self._limit)
            try:
                await trio.to_thread.run_sync(self._transport.publish, payloads)
                self.sent += len(records)
            except Exception:
                self.dropped += len(records)
                log.exception("live feed: publishing %d record(s) failed", len(records))
