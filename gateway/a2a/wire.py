"""A2A protocol 0.3 wire shapes (JSON-RPC 2.0 methods `message/send`, `message/stream`,
`tasks/get`, `tasks/cancel`, `tasks/pushNotificationConfig/*`; 1.0's are translated to
these by gateway.a2a.v1): inbound params checked with the `a2a-sdk`'s own v0.3
models, outbound tasks, messages and events built as the camelCase JSON those models
describe. Pure: no I/O.
"""
from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from gateway import errors

if TYPE_CHECKING:   # the SDK's models load on first use: ~9 MB resident otherwise
    from a2a.compat.v0_3 import types as v03

PROTOCOL_VERSION = "0.3.0"
FINAL = frozenset({"completed", "canceled", "failed", "rejected"})
MAX_ID_CHARS = 128          # a client's contextId / taskId (stored in 255-character columns)

# JSON-RPC error codes of the A2A spec (and JSON-RPC's own).
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL = (
    -32700, -32600, -32601, -32602, -32603)
TASK_NOT_FOUND, TASK_NOT_CANCELABLE, PUSH_NOT_SUPPORTED, UNSUPPORTED = -32001, -32002, -32003, -32004


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


def rpc_error_of(err: errors.PrismError) -> RpcError:
    """Our refusals as JSON-RPC errors; the type name travels in `data`."""
    code = {400: INVALID_PARAMS, 404: TASK_NOT_FOUND}.get(err.status, INTERNAL if err.status >= 500
                                                           else -32000)
    return RpcError(code, err.message, {"type": err.type_name, "status": err.status})


def result(rpc_id: Any, value: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rpc_id, "result": value}


def error(rpc_id: Any, exc: RpcError) -> dict[str, Any]:
    body: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.data is not None:
        body["data"] = exc.data
    return {"jsonrpc": "2.0", "id": rpc_id, "error": body}


def parse_envelope(body: Any) -> tuple[Any, str, dict[str, Any]]:
    if not isinstance(body, dict) or body.get("jsonrpc") != "2.0" or not isinstance(
            body.get("method"), str):
        raise RpcError(INVALID_REQUEST, "Not a JSON-RPC 2.0 request")
    params = body.get("params", {})
    if not isinstance(params, dict):
        raise RpcError(INVALID_PARAMS, "params must be an object")
    return body.get("id"), body["method"], params


def send_params(params: dict[str, Any]) -> v03.MessageSendParams:
    from a2a.compat.v0_3 import types as v03
    from pydantic import ValidationError
    try:
        parsed = v03.MessageSendParams.model_validate(params)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RpcError(INVALID_PARAMS, f"Invalid message params at {where}: {first['msg']}") from None
    if parsed.message.role != v03.Role.user:
        raise RpcError(INVALID_PARAMS, "message.role must be 'user'")
    for name, value in (("contextId", parsed.message.context_id),
                        ("taskId", parsed.message.task_id)):
        if value is not None and len(value) > MAX_ID_CHARS:
            raise RpcError(INVALID_PARAMS, f"message.{name} is longer than {MAX_ID_CHARS} "
                           "characters")
    return parsed


def task_id_param(params: dict[str, Any]) -> str:
    task_id = params.get("id")
    if not isinstance(task_id, str) or not task_id:
        raise RpcError(INVALID_PARAMS, "params.id (the task id) is required")
    return task_id


def dump_message(message: v03.Message) -> dict[str, Any]:
    return message.model_dump(mode="json", by_alias=True, exclude_none=True)


def agent_message(text: str, *, task_id: str, context_id: str) -> dict[str, Any]:
    return {"kind": "message", "role": "agent", "messageId": uuid.uuid4().hex,
            "parts": [{"kind": "text", "text": text}], "taskId": task_id, "contextId": context_id}


def _now() -> str:
    return datetime.fromtimestamp(time.time(), timezone.utc).isoformat()


def status(state: str, message: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"state": state, "timestamp": _now()}
    if message is not None:
        out["message"] = message
    return out


def new_task(task_id: str, context_id: str, first: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "task", "id": task_id, "contextId": context_id,
            "status": status("submitted"), "history": [first], "artifacts": []}


def status_event(task: dict[str, Any], final: bool) -> dict[str, Any]:
    return {"kind": "status-update", "taskId": task["id"], "contextId": task["contextId"],
            "status": task["status"], "final": final}


def artifact_event(task: dict[str, Any], artifact: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "artifact-update", "taskId": task["id"], "contextId": task["contextId"],
            "artifact": artifact, "lastChunk": True}


def text_artifact(text: str) -> dict[str, Any]:
    return {"artifactId": uuid.uuid4().hex, "name": "answer",
            "parts": [{"kind": "text", "text": text}]}


def trimmed(task: dict[str, Any], history_length: int | None) -> dict[str, Any]:
    if history_length is None:
        return task
    history = task.get("history", [])
    return {**task, "history": history[-history_length:] if history_length > 0 else []}


def card(*, name: str, description: str, url: str, version: str,
         skills: list[dict[str, Any]], push: bool = False) -> dict[str, Any]:
    """An agent card that both protocol versions read: 0.3's fields (`url`,
    `protocolVersion`, `preferredTransport`), and 1.0's `supportedInterfaces` naming the
    same endpoint once per version (it serves both method sets)."""
    body = {
        "protocolVersion": PROTOCOL_VERSION, "name": name, "description": description,
        "url": url, "preferredTransport": "JSONRPC", "version": version,
        "supportedInterfaces": [
            {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
            {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": PROTOCOL_VERSION}],
        "capabilities": {"streaming": True, "pushNotifications": push,
                         "stateTransitionHistory": False},
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                       "bearerFormat": "sk-prism-...",
                                       "description": "A Prism API key"}},
        "security": [{"bearer": []}],
        "defaultInputModes": ["text/plain"], "defaultOutputModes": ["text/plain"],
        "skills": skills,
    }
    from a2a.compat.v0_3 import types as v03
    v03.AgentCard.model_validate(body)      # a card we would refuse to read is a bug here
    return body
