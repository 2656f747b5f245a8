"""A lean HTTP/1.1 front for hypercorn's trio worker.

Under load hypercorn's per-request machinery cost about a third of the gateway's CPU
(py-spy, issue 18): h11's event objects and validation on both sides, a protocol
wrapper, an HTTP stream object, a task spawned per request with a channel feeding it
the body, a lock and a shielded cancel scope per socket write, and an idle-timer task
restarted on every request. Almost every request a gateway sees is the plainest kind of
HTTP/1.1: a head, a Content-Length body, a response.

This module serves exactly those, on plain TCP: per connection one task reads and
another calls the ASGI app inline, request after request; the head is parsed with bytes methods, the body is handed over in
the same `receive` message when it is already buffered, and a response whose body
arrives in one message leaves in one write with its Content-Length. Anything else goes
to hypercorn's own TCPServer for the rest of the connection, with the bytes already
read replayed first: TLS, HTTP/2 (prior knowledge or Upgrade), WebSocket upgrades,
`Expect: 100-continue`, chunked request bodies. So hypercorn remains the server: its
worker, listeners, lifespan, graceful shutdown and every protocol it speaks; this is a
faster path in front of one of them.

Heads are parsed and written by gateway/http/h1head.py; a connection (a reader task
and the connection's own task running the app) is gateway/http/front_conn.py.

ASGI semantics kept: `receive` gives the body, then blocks until the client hangs up
(-> http.disconnect) or the response is complete; `send` never raises on a broken
connection (later messages are dropped and `receive` reports the disconnect), as with
hypercorn. Limits: the head must arrive within keep_alive_timeout and fit in
h11_max_incomplete_size (431 otherwise), a slow body is the app's to time out (as
hypercorn's backstop read timeout is never reached first), and at
most `max_connections` connections are served at once (more are closed on accept).
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable

import trio
import hypercorn.trio.run as hyper_run
from hypercorn.trio import serve as hyper_serve
from hypercorn.trio.tcp_server import TCPServer

from gateway.http.front_conn import Connection


class Front:
    """The front of one gateway's hypercorn server (one HyperConfig)."""

    def __init__(self, app: Any, *, max_connections: int) -> None:
        self.app = app
        self.max_connections = max_connections
        self.open = 0
        self.closing = False
        self.idle: set[trio.CancelScope] = set()

    def shutdown(self) -> None:
        """Stop keeping connections alive; close the ones waiting for a request."""
        self.closing = True
        for scope in list(self.idle):
            scope.cancel()


# HyperConfig id -> Front. hypercorn.trio.run builds each connection's handler as
# TCPServer(app, config, context, state)(stream); the stand-in below gives the
# connections of a config registered here to the front, every other to hypercorn.
_fronts: dict[int, Front] = {}


def _server_for(app, config, context, state, stream):
    front = _fronts.get(id(config))
    if front is None or not isinstance(stream, trio.SocketStream):
        return TCPServer(app, config, context, state, stream)
    return Connection(front, app, config, context, state, stream).run()


async def serve(app: Any, config: Any, *, max_connections: int,
                shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
                task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """hypercorn.trio.serve with this front on its plain-TCP connections."""
    front = Front(app, max_connections=max_connections)

    async def trigger() -> None:
        if shutdown_trigger is None:
            await trio.sleep_forever()
        await shutdown_trigger()
        front.shutdown()

    hyper_run.TCPServer = _server_for
    _fronts[id(config)] = front
    try:
        await hyper_serve(app, config, shutdown_trigger=trigger, task_status=task_status)
    finally:
        del _fronts[id(config)]
