"""The control socket's listener: a Unix socket the dashboard talks to (trio).

serve_control runs in the gateway's service nursery. It owns the socket file (created
0600, a stale one from a crashed run replaced, removed again at stop), one task per
connection, and the EventHub that fans finished requests out to subscribers.

A connection that sends garbage, an oversized frame or an unknown type gets one Error
frame and is closed; nothing else notices. The request path never waits on a
dashboard: EventHub.publish is synchronous and each subscriber has a small buffer;
when it is full the event is dropped and counted, and the subscriber is sent
Dropped(count) once it has caught up with what was buffered.
"""
from __future__ import annotations

import errno
import logging
import os
import socket as stdlib_socket
import stat
import struct
import time
from typing import TYPE_CHECKING, Any

import trio

import store
from gateway import errors
from gateway.control import ops, wire
from gateway.errors import WireError

if TYPE_CHECKING:
    from gateway.engine.services import Services

log = logging.getLogger("prism.control")

# A small kernel send buffer keeps back-pressure honest: a dashboard that stops
# reading fills its event buffer within a few hundred events instead of hiding
# behind megabytes of socket memory.
SNDBUF_BYTES = 32 * 1024
MAX_CONNECTIONS = 32
RECV_BYTES = 64 * 1024
# A client being told why it is disconnected gets this long to read it.
FAREWELL_SECONDS = 2.0


class Subscriber:
    __slots__ = ("send", "receive", "dropped")

    def __init__(self, buffer: int) -> None:
        self.send, self.receive = trio.open_memory_channel[bytes](buffer)
        self.dropped = 0


class EventHub:
    """Encodes each finished request once and hands it to every subscriber's buffer."""

    def __init__(self, buffer: int) -> None:
        self.buffer = buffer
        self._subscribers: set[Subscriber] = set()

    def subscribe(self) -> Subscriber:
        sub = Subscriber(self.buffer)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subscribers.discard(sub)
        sub.send.close()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, record: dict[str, Any]) -> None:
        """The Services observer: never blocks, never raises."""
        if not self._subscribers:
            return
        try:
            frame = wire.encode(wire.Event(record={"at": time.time(), **record}))
        except WireError:
            log.exception("request record cannot be sent as an event")
            return
        for sub in self._subscribers:
            try:
                sub.send.send_nowait(frame)
            except trio.WouldBlock:
                sub.dropped += 1
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the connection is closing and will unsubscribe


def peer_actor(sock: Any) -> str:
    """"socket:uid=..,pid=.." from the kernel's peer credentials (Linux), for audit rows."""
    try:
        raw = sock.getsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_PEERCRED,
                              struct.calcsize("3i"))
    except (AttributeError, OSError):
        return "socket"
    pid, uid, _ = struct.unpack("3i", raw)
    return f"socket:uid={uid},pid={pid}"


class _Connection:
    def __init__(self, services: "Services", hub: EventHub, stream: trio.SocketStream) -> None:
        self.s = services
        self.hub = hub
        self.stream = stream
        self.actor = peer_actor(stream.socket)
        self._send_lock = trio.Lock()
        self._sub: Subscriber | None = None
        self._pump_scope: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None

    async def run(self) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await self._read_loop()
                nursery.cancel_scope.cancel()
        except* (trio.BrokenResourceError, trio.ClosedResourceError):
            # The peer went away (from the reader or the event pump, hence except*):
            # nothing to tell it, and nothing for anyone else to notice.
            pass
        finally:
            if self._sub is not None:
                self.hub.unsubscribe(self._sub)
            await trio.aclose_forcefully(self.stream)

    async def _read_loop(self) -> None:
        decoder = wire.FrameDecoder()
        while True:
            data = await self.stream.receive_some(RECV_BYTES)
            try:
                if not data:
                    decoder.close()
                    return
                messages = decoder.feed(data)
            except WireError as exc:
                await self.farewell(exc)
                return
            for msg in messages:
                if not isinstance(msg, wire.Request):
                    await self.farewell(WireError(
                        f"{msg.TYPE} is sent by the gateway, not to it", code="unexpected_type"))
                    return
                await self._send(self._answer_frame(msg, await self._answer(msg)))

    async def _dispatch(self, m: wire.Request) -> Any:
        s, actor = self.s, self.actor
        match m:
            case wire.Subscribe():
                return await self._subscribe()
            case wire.Unsubscribe():
                return self._unsubscribe()
            case wire.ListProviders():
                return ops.providers(s)
            case wire.ListModels():
                return ops.models(s)
            case wire.ListAccounts():
                return await ops.accounts(s)
            case wire.ListOrgs():
                from gateway.orgs.ops import orgs as list_orgs
                return await list_orgs(s)
            case wire.ListKeys():
                return await ops.keys(s, m.account_id)
            case wire.ListHolds():
                return await ops.holds(s, m.account_id)
            case wire.ListWindows():
                return ops.windows(s, m.account_id)
            case wire.SetProviderFlags():
                return await ops.set_flags(s, m.provider_id, actor=actor, enabled=m.enabled,
                                           images=m.images, video=m.video)
            case wire.AdjustWallet():
                return await ops.adjust_wallet(s, m.account_id, m.amount_micros, m.reason,
                                               actor=actor)
            case wire.CreateKey():
                return await ops.create_key(s, m.name, actor=actor,
                                            credits_micros=m.credits_micros,
                                            account_id=m.account_id)
            case wire.RevokeKey():
                return await ops.revoke_key(s, m.key_id, actor=actor)
            case wire.ListJobs():
                return await ops.jobs(s, m.account_id)
            case wire.CancelJob():
                return await ops.cancel_job(s, m.job_id, actor=actor)
            case wire.RotationStep():
                return await ops.rotation_step(s, m.provider_id, m.step, actor=actor)
        raise errors.InvalidRequest(f"{m.TYPE} has no handler", code="unknown_type")

    async def _answer(self, msg: wire.Request) -> Any:
        try:
            return await self._dispatch(msg)
        except errors.PrismError as exc:
            return exc
        except store.StoreError as exc:
            log.warning("control %s failed in the store: %s", msg.TYPE, exc)
            return errors.PrismError(f"store error: {exc}", code="store_error")
        except Exception as exc:  # noqa: BLE001 - one command's bug must not end the gateway
            log.exception("control %s failed", msg.TYPE)
            return errors.PrismError(f"internal error ({type(exc).__name__}); see the "
                                     "gateway log", code="internal_error")

    @staticmethod
    def _answer_frame(msg: wire.Request, outcome: Any) -> bytes:
        if not isinstance(outcome, errors.PrismError):
            try:
                return wire.encode(wire.Result(id=msg.id, data=outcome))
            except WireError as exc:
                outcome = exc
        return wire.encode(wire.Error(id=msg.id, code=outcome.code or outcome.type_name,
                                      message=outcome.message[:2000] or outcome.type_name))

    async def farewell(self, exc: WireError) -> None:
        """Say why, briefly, then let run() close the connection."""
        frame = wire.encode(wire.Error(id=None, code=exc.code or "bad_frame",
                                       message=exc.message[:2000]))
        with trio.move_on_after(FAREWELL_SECONDS):
            try:
                await self._send(frame)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    async def _send(self, frame: bytes) -> None:
        async with self._send_lock:
            await self.stream.send_all(frame)

    async def _subscribe(self) -> dict[str, Any]:
        if self._sub is None:
            self._sub = self.hub.subscribe()
            self._pump_scope = await self._nursery.start(self._pump, self._sub)
            if self.s.cluster is not None:
                self.s.cluster.beat_now()   # the other processes start sending
        return {"subscribed": True, "buffer": self.hub.buffer}

    def _unsubscribe(self) -> dict[str, Any]:
        if self._sub is not None:
            self.hub.unsubscribe(self._sub)
            self._pump_scope.cancel()
            self._sub = self._pump_scope = None
        return {"subscribed": False}

    async def _pump(self, sub: Subscriber, task_status=trio.TASK_STATUS_IGNORED) -> None:
        with trio.CancelScope() as scope:
            task_status.started(scope)
            async for frame in sub.receive:
                await self._send(frame)
                # Tell of drops only once the buffer is empty, so the count lands after
                # the events that were kept, where the gap actually is.
                if sub.dropped and sub.receive.statistics().current_buffer_used == 0:
                    count, sub.dropped = sub.dropped, 0
                    await self._send(wire.encode(wire.Dropped(count=count)))


async def _is_alive(path: str) -> bool:
    probe = trio.socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
    try:
        with trio.move_on_after(1.0):
            await probe.connect(path)
            return True
        return True  # a listener too busy to accept is still alive
    except OSError:
        return False
    finally:
        probe.close()


async def bind_socket(path: str) -> trio.socket.SocketType:
    """A listening Unix socket at `path`, mode 0600, replacing a stale socket file but
    never a live one or a file that is not a socket."""
    if os.path.lexists(path):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise OSError(errno.EEXIST, f"control socket path {path} exists and is not a "
                                        "socket; refusing to replace it")
        if await _is_alive(path):
            raise OSError(errno.EADDRINUSE, f"another gateway is serving the control "
                                             f"socket {path}")
        os.unlink(path)
    sock = trio.socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
    try:
        # Linux gives the socket file the mode of the unbound socket, so it is never
        # visible with a wider mode; the chmod after covers systems that do not.
        os.fchmod(sock.fileno(), 0o600)
        await sock.bind(path)
        os.chmod(path, 0o600)
        sock.listen(MAX_CONNECTIONS)
    except BaseException:
        sock.close()
        raise
    return sock


async def serve_control(services: "Services", *, path: str | None = None,
                        task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Serve until cancelled; task_status gets the socket path."""
    cfg = services.config
    path = path or cfg.resolve_path(cfg.control.socket)
    hub = EventHub(cfg.control.event_buffer)
    sock = await bind_socket(path)
    inode = os.stat(path).st_ino
    open_connections = 0

    async def handle(stream: trio.SocketStream) -> None:
        nonlocal open_connections
        conn = _Connection(services, hub, stream)
        if open_connections >= MAX_CONNECTIONS:
            await conn.farewell(WireError("too many control connections",
                                          code="too_many_connections"))
            await trio.aclose_forcefully(stream)
            return
        open_connections += 1
        try:
            stream.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_SNDBUF, SNDBUF_BYTES)
            await conn.run()
        except Exception:  # noqa: BLE001 - the connection boundary: a bug here ends
            # this connection, logged, never the listener and with it the gateway.
            log.exception("control connection failed")
        finally:
            open_connections -= 1

    services.observers.append(hub.publish)
    feed = services.cluster.feed if services.cluster is not None else None
    if feed is not None:
        feed.attach(hub)      # the other processes' requests, tagged with their node
    if services.orgs is not None:
        services.orgs.alerts.append(hub.publish)    # budget alerts (gateway.orgs)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, handle, [trio.SocketListener(sock)])
            log.info("control socket listening on %s", path)
            task_status.started(path)
    finally:
        services.observers.remove(hub.publish)
        if feed is not None:
            feed.detach()
        if services.orgs is not None:
            services.orgs.alerts.remove(hub.publish)
        try:
            if os.stat(path).st_ino == inode:
                os.unlink(path)
        except FileNotFoundError:
            pass
