"""Assistants, threads and messages (the `openai` SDK's client.beta.assistants and
client.beta.threads): validation and the objects' wire shapes. Runs: runs.py.

`code_interpreter` is refused with a 400 wherever it is named: Prism runs no untrusted
code. `file_search` searches the caller's own vector stores (vector_stores.py).
"""
from __future__ import annotations

import secrets
import time
from typing import Any

import store.assistants as sa
from gateway import errors
from gateway.resources.vector_stores import _metadata

# The kinds of object, as the routes name them to get, list and delete.
Assistant, Thread, ThreadMessage = sa.Assistant, sa.Thread, sa.ThreadMessage
Run, RunStep = sa.Run, sa.RunStep

NO_CODE = ("code_interpreter is not supported: Prism runs no untrusted code. Use function "
           "tools (executed by your application) or file_search instead")


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def _str(body: dict, key: str, *, required: bool = False, limit: int = 256_000) -> str | None:
    v = body.get(key)
    if v is None and not required:
        return None
    if not isinstance(v, str) or (required and not v) or len(v) > limit:
        raise errors.InvalidRequest(f"{key} must be a {'non-empty ' if required else ''}string"
                                    f" of at most {limit} characters", field=key)
    return v


def _number(body: dict, key: str, lo: float, hi: float) -> float | None:
    v = body.get(key)
    if v is None:
        return None
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not lo <= v <= hi:
        raise errors.InvalidRequest(f"{key} must be a number between {lo} and {hi}", field=key)
    return v


def check_tools(tools: Any, where: str = "tools") -> list[dict]:
    if tools is None:
        return []
    if not isinstance(tools, list) or len(tools) > 128:
        raise errors.InvalidRequest(f"{where} must be a list of at most 128 tools", field=where)
    out = []
    for i, t in enumerate(tools):
        kind = t.get("type") if isinstance(t, dict) else None
        if kind == "code_interpreter":
            raise errors.InvalidRequest(NO_CODE, field=f"{where}[{i}]", code="unsupported_tool")
        if kind == "file_search":
            fs = t.get("file_search") or {}
            n = fs.get("max_num_results", 10) if isinstance(fs, dict) else None
            if type(n) is not int or not 1 <= n <= 50:
                raise errors.InvalidRequest("file_search.max_num_results must be 1..50",
                                            field=f"{where}[{i}].file_search")
            out.append({"type": "file_search", "file_search": {"max_num_results": n}})
        elif kind == "function":
            fn = t.get("function")
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
                raise errors.InvalidRequest("function tools need function.name",
                                            field=f"{where}[{i}].function")
            params = fn.get("parameters", {"type": "object", "properties": {}})
            if not isinstance(params, dict):
                raise errors.InvalidRequest("function.parameters must be a JSON schema object",
                                            field=f"{where}[{i}].function.parameters")
            out.append({"type": "function", "function": {
                "name": fn["name"], "description": fn.get("description"), "parameters": params,
                "strict": bool(fn.get("strict", False))}})
        else:
            raise errors.InvalidRequest("tool type must be function or file_search",
                                        field=f"{where}[{i}].type")
    return out


def check_response_format(v: Any) -> Any:
    if v is None or v == "auto":
        return "auto"
    if isinstance(v, dict) and v.get("type") in ("text", "json_object"):
        return {"type": v["type"]}
    if isinstance(v, dict) and v.get("type") == "json_schema" and isinstance(v.get("json_schema"), dict) \
            and isinstance(v["json_schema"].get("schema"), dict):
        return v
    raise errors.InvalidRequest("response_format must be 'auto', {\"type\": \"text\"}, "
                                "{\"type\": \"json_object\"} or a json_schema format",
                                field="response_format")


class Assistants:
    def __init__(self, writer, vector_stores) -> None:
        self.writer = writer
        self.vector_stores = vector_stores

    async def tool_resources(self, account_id: str, raw: Any) -> dict:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise errors.InvalidRequest("tool_resources must be an object", field="tool_resources")
        if (raw.get("code_interpreter") or {}).get("file_ids"):
            raise errors.InvalidRequest(NO_CODE, field="tool_resources.code_interpreter",
                                        code="unsupported_tool")
        fs = raw.get("file_search") or {}
        ids = list(fs.get("vector_store_ids") or [])
        for i in ids:
            await self.vector_stores.get(account_id, i)     # 404 unless the caller's
        for spec in fs.get("vector_stores") or []:           # the create-inline helper
            vs = await self.vector_stores.create(account_id, spec if isinstance(spec, dict) else {})
            ids.append(vs.id)
        if len(ids) > 1:
            raise errors.InvalidRequest("file_search takes at most one vector store here",
                                        field="tool_resources.file_search.vector_store_ids")
        return {"file_search": {"vector_store_ids": ids}} if ids else {}

    # ------------------------------------------------------------ assistants

    async def _assistant_fields(self, account_id: str, body: dict, current: dict) -> dict:
        out = dict(current)
        if "model" in body or not current:
            out["model"] = _str(body, "model", required=True)
        for key, limit in (("name", 256), ("description", 512), ("instructions", 256_000)):
            if key in body:
                out[key] = _str(body, key, limit=limit)
        if "tools" in body:
            out["tools"] = check_tools(body["tools"])
        if "tool_resources" in body:
            out["tool_resources"] = await self.tool_resources(account_id, body["tool_resources"])
        if "metadata" in body:
            out["metadata"] = _metadata(body["metadata"])
        if "temperature" in body:
            out["temperature"] = _number(body, "temperature", 0, 2)
        if "top_p" in body:
            out["top_p"] = _number(body, "top_p", 0, 1)
        if "response_format" in body:
            out["response_format"] = check_response_format(body["response_format"])
        return out

    async def create_assistant(self, account_id: str, body: dict) -> dict:
        base = {"id": new_id("asst_"), "object": "assistant", "created_at": int(time.time()),
                "name": None, "description": None, "instructions": None, "tools": [],
                "tool_resources": {}, "metadata": {}, "temperature": None, "top_p": None,
                "response_format": "auto"}
        obj = {**base, **await self._assistant_fields(account_id, body, {})}
        await self.writer.call(sa.insert, sa.Assistant, [obj], account_id)
        return obj

    async def get(self, model, account_id: str, obj_id: str, parent_id: str | None = None) -> dict:
        obj = await self.writer.call(sa.get, model, obj_id, account_id, parent_id)
        if obj is None:
            kind = model.__name__.replace("ThreadMessage", "message").lower()
            raise errors.NotFound(f"No {kind} with id '{obj_id}'")
        return obj

    async def update_assistant(self, account_id: str, asst_id: str, body: dict) -> dict:
        cur = await self.get(sa.Assistant, account_id, asst_id)
        patch = await self._assistant_fields(account_id, body, cur)
        return await self.writer.call(sa.update, sa.Assistant, asst_id, account_id, patch)

    async def listing(self, model, account_id: str, parent_id: str | None, *, limit: int,
                      after: str | None, order: str) -> tuple[list[dict], bool]:
        """One page of the account's objects of ``model`` (under ``parent_id``), and
        whether more follow."""
        return await self.writer.call(sa.listing, model, account_id, parent_id, limit=limit,
                                      after=after, order=order)

    async def run_messages(self, account_id: str, thread_id: str, run_id: str) -> list[dict]:
        """The thread's messages a run wrote, oldest first."""
        return [m for m in await self.writer.call(sa.all_of, sa.ThreadMessage, account_id,
                                                  thread_id) if m.get("run_id") == run_id]

    async def delete(self, model, account_id: str, obj_id: str) -> None:
        if not await self.writer.call(sa.delete, model, obj_id, account_id):
            await self.get(model, account_id, obj_id)     # raises the 404

    # ------------------------------------------------------------ threads and messages

    async def create_thread(self, account_id: str, body: dict) -> dict:
        obj = {"id": new_id("thread_"), "object": "thread", "created_at": int(time.time()),
               "metadata": _metadata(body.get("metadata")),
               "tool_resources": await self.tool_resources(account_id, body.get("tool_resources"))}
        msgs = body.get("messages") or []
        if not isinstance(msgs, list) or len(msgs) > 32:
            raise errors.InvalidRequest("messages must be a list of at most 32", field="messages")
        built = [await self.message_object(account_id, obj, m) for m in msgs]
        await self.writer.call(sa.insert, sa.Thread, [obj], account_id)
        await self.writer.call(sa.insert, sa.ThreadMessage, built, account_id, obj["id"])
        return obj

    async def update_thread(self, account_id: str, thread_id: str, body: dict) -> dict:
        await self.get(sa.Thread, account_id, thread_id)
        patch: dict = {}
        if "metadata" in body:
            patch["metadata"] = _metadata(body["metadata"])
        if "tool_resources" in body:
            patch["tool_resources"] = await self.tool_resources(account_id, body["tool_resources"])
        return await self.writer.call(sa.update, sa.Thread, thread_id, account_id, patch)

    async def _content(self, account_id: str, content: Any) -> list[dict]:
        if isinstance(content, str):
            return [{"type": "text", "text": {"value": content, "annotations": []}}]
        if not isinstance(content, list) or not content:
            raise errors.InvalidRequest("content must be a string or a non-empty list of parts",
                                        field="content")
        out = []
        for i, p in enumerate(content):
            kind = p.get("type") if isinstance(p, dict) else None
            if kind == "text" and isinstance(p.get("text"), str):
                out.append({"type": "text", "text": {"value": p["text"], "annotations": []}})
            elif kind == "image_url" and isinstance(p.get("image_url"), dict) \
                    and isinstance(p["image_url"].get("url"), str):
                out.append({"type": "image_url", "image_url": {
                    "url": p["image_url"]["url"], "detail": p["image_url"].get("detail", "auto")}})
            elif kind == "image_file" and isinstance(p.get("image_file"), dict):
                fid = p["image_file"].get("file_id")
                await self.vector_stores.files.get(account_id, fid)
                out.append({"type": "image_file", "image_file": {
                    "file_id": fid, "detail": p["image_file"].get("detail", "auto")}})
            else:
                raise errors.InvalidRequest("content parts are text, image_url or image_file",
                                            field=f"content[{i}]")
        return out

    async def _attachments(self, account_id: str, thread: dict, raw: Any) -> list[dict]:
        """Attached files with file_search go into the thread's own vector store."""
        if not raw:
            return []
        if not isinstance(raw, list):
            raise errors.InvalidRequest("attachments must be a list", field="attachments")
        out, searchable = [], []
        for a in raw:
            fid = a.get("file_id") if isinstance(a, dict) else None
            await self.vector_stores.files.get(account_id, fid)
            tools = check_tools(a.get("tools") or [], "attachments.tools")
            out.append({"file_id": fid, "tools": [{"type": t["type"]} for t in tools]})
            if any(t["type"] == "file_search" for t in tools):
                searchable.append(fid)
        if searchable:
            ids = (thread.get("tool_resources") or {}).get("file_search", {}).get("vector_store_ids")
            if ids:
                for fid in searchable:
                    await self.vector_stores.add_file(account_id, ids[0], {"file_id": fid})
            else:
                vs = await self.vector_stores.create(account_id, {"file_ids": searchable,
                                                                  "name": f"{thread['id']} files"})
                thread["tool_resources"] = {"file_search": {"vector_store_ids": [vs.id]}}
                await self.writer.call(sa.update, sa.Thread, thread["id"], account_id,
                                       {"tool_resources": thread["tool_resources"]})
        return out

    async def message_object(self, account_id: str, thread: dict, body: Any) -> dict:
        if not isinstance(body, dict):
            raise errors.InvalidRequest("a message must be an object", field="messages")
        role = body.get("role")
        if role not in ("user", "assistant"):
            raise errors.InvalidRequest("role must be 'user' or 'assistant'", field="role")
        now = time.time()
        return {"id": new_id("msg_"), "object": "thread.message", "created_at": int(now),
                "_t": now, "thread_id": thread["id"], "status": "completed",
                "incomplete_details": None, "completed_at": int(now), "incomplete_at": None,
                "role": role, "content": await self._content(account_id, body.get("content")),
                "assistant_id": None, "run_id": None,
                "attachments": await self._attachments(account_id, thread, body.get("attachments")),
                "metadata": _metadata(body.get("metadata"))}

    async def add_message(self, account_id: str, thread_id: str, body: dict) -> dict:
        thread = await self.get(sa.Thread, account_id, thread_id)
        if await self.writer.call(sa.active_run, thread_id):
            raise errors.InvalidRequest("Can't add messages to a thread while a run is active",
                                        code="run_active")
        msg = await self.message_object(account_id, thread, body)
        await self.writer.call(sa.insert, sa.ThreadMessage, [msg], account_id, thread_id)
        return msg

    async def update_message(self, account_id: str, thread_id: str, msg_id: str, body: dict) -> dict:
        await self.get(sa.ThreadMessage, account_id, msg_id, thread_id)
        return await self.writer.call(sa.update, sa.ThreadMessage, msg_id, account_id,
                                      {"metadata": _metadata(body.get("metadata"))})


def public(obj: dict) -> dict:
    """The object as the API shows it (private bookkeeping keys start with '_')."""
    return {k: v for k, v in obj.items() if not k.startswith("_")}
