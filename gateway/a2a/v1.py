"""A2A 1.0 JSON-RPC (`SendMessage`, `SendStreamingMessage`, `GetTask`, `CancelTask`,
`Create/Get/List/DeleteTaskPushNotificationConfig`, and `ListTasks`, which 0.3 lacks)
served beside the 0.3 methods.

The service keeps one shape (0.3 JSON, gateway.a2a.wire); this module translates a 1.0
call to the 0.3 call it means, and the 0.3 answer back to 1.0's ProtoJSON, with the
a2a-sdk's own conversions (a2a.compat.v0_3.conversions) so both versions mean exactly
what the SDK means by them. Pure: no I/O.
"""
from __future__ import annotations

from typing import Any

from a2a.compat.v0_3 import conversions as conv
from a2a.compat.v0_3 import types as v03
from a2a.types import a2a_pb2 as pb
from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from pydantic import ValidationError

from gateway.a2a import wire

PROTOCOL_VERSION = "1.0"

# 1.0 method -> (the 0.3 method, the 1.0 request type, its to-0.3 conversion)
_METHODS: dict[str, tuple[str, type, Any]] = {
    "SendMessage": ("message/send", pb.SendMessageRequest, conv.to_compat_send_message_request),
    "SendStreamingMessage": ("message/stream", pb.SendMessageRequest,
                             conv.to_compat_send_message_request),
    "GetTask": ("tasks/get", pb.GetTaskRequest, conv.to_compat_get_task_request),
    "CancelTask": ("tasks/cancel", pb.CancelTaskRequest, conv.to_compat_cancel_task_request),
    "CreateTaskPushNotificationConfig": (
        "tasks/pushNotificationConfig/set", pb.TaskPushNotificationConfig,
        conv.to_compat_create_task_push_notification_config_request),
    "GetTaskPushNotificationConfig": (
        "tasks/pushNotificationConfig/get", pb.GetTaskPushNotificationConfigRequest,
        conv.to_compat_get_task_push_notification_config_request),
    "ListTaskPushNotificationConfigs": (
        "tasks/pushNotificationConfig/list", pb.ListTaskPushNotificationConfigsRequest,
        conv.to_compat_list_task_push_notification_config_request),
    "DeleteTaskPushNotificationConfig": (
        "tasks/pushNotificationConfig/delete", pb.DeleteTaskPushNotificationConfigRequest,
        conv.to_compat_delete_task_push_notification_config_request),
}
STREAMING = frozenset({"SendStreamingMessage"})


def is_v1(method: str) -> bool:
    return method in _METHODS


def to_v03(method: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(0.3 method, 0.3 params) for a 1.0 call; INVALID_PARAMS when it does not parse."""
    method03, request_type, convert = _METHODS[method]
    try:
        core = ParseDict(params, request_type())
        compat = convert(core, 0)
    except (ParseError, ValidationError, ValueError, TypeError, KeyError) as exc:
        raise wire.RpcError(wire.INVALID_PARAMS, f"Invalid {method} params: "
                            f"{str(exc).splitlines()[0][:300]}") from None
    return method03, compat.params.model_dump(mode="json", by_alias=True, exclude_none=True)


def _dict(message: Any) -> dict[str, Any]:
    return MessageToDict(message)


def task(value: dict[str, Any]) -> dict[str, Any]:
    return _dict(conv.to_core_task(v03.Task.model_validate(value)))


def _push_config(value: dict[str, Any]) -> dict[str, Any]:
    return _dict(conv.to_core_task_push_notification_config(
        v03.TaskPushNotificationConfig.model_validate(value)))


def result(method: str, value: Any) -> Any:
    """The 1.0 answer to `method` from the 0.3 answer the service gave."""
    if method == "SendMessage":
        res = pb.SendMessageResponse()
        if isinstance(value, dict) and value.get("kind") == "message":
            res.message.CopyFrom(conv.to_core_message(v03.Message.model_validate(value)))
        else:
            res.task.CopyFrom(conv.to_core_task(v03.Task.model_validate(value)))
        return _dict(res)
    if method in ("GetTask", "CancelTask"):
        return task(value)
    if method in ("CreateTaskPushNotificationConfig", "GetTaskPushNotificationConfig"):
        return _push_config(value)
    if method == "ListTaskPushNotificationConfigs":
        res = pb.ListTaskPushNotificationConfigsResponse()
        for item in value:
            res.configs.append(conv.to_core_task_push_notification_config(
                v03.TaskPushNotificationConfig.model_validate(item)))
        return _dict(res)
    if method == "DeleteTaskPushNotificationConfig":
        return {}
    raise AssertionError(method)


def stream_event(value: dict[str, Any]) -> dict[str, Any]:
    """One 0.3 stream event (task, message, status-update, artifact-update) as a 1.0
    StreamResponse."""
    event = v03.SendStreamingMessageSuccessResponse.model_validate(
        {"jsonrpc": "2.0", "id": 0, "result": value})
    return _dict(conv.to_core_stream_response(event))


MAX_PAGE = 100


def list_request(params: dict[str, Any]) -> dict[str, Any]:
    """ListTasks' filters and page: context_id, state (0.3's name), limit, offset,
    history_length (None: all), include_artifacts."""
    try:
        req = ParseDict(params, pb.ListTasksRequest())
    except (ParseError, ValueError, TypeError) as exc:
        raise wire.RpcError(wire.INVALID_PARAMS, f"Invalid ListTasks params: "
                            f"{str(exc).splitlines()[0][:300]}") from None
    token = req.page_token or "0"
    if not token.isdigit() or len(token) > 9:
        raise wire.RpcError(wire.INVALID_PARAMS, "pageToken is not one this server gave")
    if req.page_size < 0 or req.page_size > MAX_PAGE:
        raise wire.RpcError(wire.INVALID_PARAMS, f"pageSize must be 1 to {MAX_PAGE}")
    state = None
    if req.status:
        state = pb.TaskState.Name(req.status).removeprefix("TASK_STATE_").lower().replace("_", "-")
    return {"context_id": req.context_id or None, "state": state,
            "limit": req.page_size or 50, "offset": int(token),
            "history_length": req.history_length if req.HasField("history_length") else None,
            "include_artifacts": req.include_artifacts}


def list_result(tasks: list[dict[str, Any]], page: dict[str, Any], total: int) -> dict[str, Any]:
    res = pb.ListTasksResponse(page_size=page["limit"], total_size=total)
    for value in tasks:
        value = wire.trimmed(value, page["history_length"])
        if not page["include_artifacts"]:
            value = {**value, "artifacts": []}
        res.tasks.append(conv.to_core_task(v03.Task.model_validate(value)))
    end = page["offset"] + len(tasks)
    if end < total:
        res.next_page_token = str(end)
    return _dict(res)
