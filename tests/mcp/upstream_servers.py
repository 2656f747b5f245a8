"""Two small upstream MCP servers written with the official `mcp` SDK, for the gateway
tests: `notes` (run over stdio) and `calc` (run over Streamable HTTP by uvicorn).

    python tests/mcp/upstream_servers.py stdio
    python tests/mcp/upstream_servers.py PORT http

`notes__crash` exits the process at once, so a test can watch the gateway notice,
drop the server's tools and restart it.
"""
from __future__ import annotations

import os
import sys

from mcp.server.mcpserver import MCPServer


def notes_server() -> MCPServer:
    server = MCPServer("notes", instructions="Notes kept in memory")
    notes: dict[str, str] = {"welcome": "Hello from the notes server"}

    @server.tool()
    def add_note(name: str, text: str) -> str:
        """Store a note under a name."""
        notes[name] = text
        return f"saved {name} ({len(text)} chars)"

    @server.tool()
    def read_note(name: str) -> str:
        """Read a note back."""
        return notes.get(name, "no such note")

    @server.tool()
    def crash() -> str:
        """Exit the server process (for crash-recovery tests)."""
        os._exit(3)

    @server.resource("notes://welcome", mime_type="text/plain")
    def welcome() -> str:
        """The welcome note."""
        return notes["welcome"]

    @server.prompt()
    def summarize(topic: str) -> str:
        """Ask for a summary of a topic."""
        return f"Summarize what you know about {topic} in one paragraph."

    return server


def calc_server() -> MCPServer:
    server = MCPServer("calc")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @server.tool()
    def secret_pid() -> str:
        """The server's process id (a tool most keys may not call)."""
        return str(os.getpid())

    return server


if __name__ == "__main__":
    if sys.argv[1] == "stdio":
        notes_server().run("stdio")
    else:
        calc_server().run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]),
                          transport_security=None)
