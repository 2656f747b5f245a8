"""/v1/vector_stores: stores, their files, file batches and search. Decode, hand to
gateway/resources/vector_stores, encode."""
from __future__ import annotations

from quart import Blueprint, request

from gateway.http import common
from gateway.http.files_routes import json_response, page, page_args
from gateway.resources.search_logic import rewrite
from gateway.resources.vector_stores import file_object, parse_search

bp = Blueprint("vector_stores", __name__)
_ROUTE = "/v1/vector_stores"


def _vs():
    return common.services().resources.vector_stores


async def _account() -> str:
    return (await common.authenticate(_ROUTE, "openai", log=False)).account_id


@bp.post(_ROUTE)
async def create():
    account = await _account()
    vs = _vs()
    row = await vs.create(account, await common.read_json_object())
    return json_response(await vs.object(row))


@bp.get(_ROUTE)
async def listing():
    account = await _account()
    limit, after, order = page_args(100, 20)
    rows, more = await _vs().listing(account, limit=limit, after=after, order=order)
    return json_response(page([await _vs().object(r) for r in rows], more))


@bp.get(_ROUTE + "/<store_id>")
async def get(store_id: str):
    account = await _account()
    return json_response(await _vs().object(await _vs().get(account, store_id)))


@bp.post(_ROUTE + "/<store_id>")
async def update(store_id: str):
    account = await _account()
    row = await _vs().update(account, store_id, await common.read_json_object())
    return json_response(await _vs().object(row))


@bp.delete(_ROUTE + "/<store_id>")
async def delete(store_id: str):
    account = await _account()
    await _vs().delete(account, store_id)
    return json_response({"id": store_id, "object": "vector_store.deleted", "deleted": True})


@bp.post(_ROUTE + "/<store_id>/search")
async def search(store_id: str):
    account = await _account()
    queries, n, filters, threshold, rewritten = parse_search(await common.read_json_object())
    if rewritten:
        queries = [rewrite(q) for q in queries]
    data = await _vs().search(account, [store_id], queries, max_results=n, filters=filters,
                              score_threshold=threshold)
    for d in data:
        d.pop("vector_store_id")
    return json_response({"object": "vector_store.search_results.page", "search_query": queries,
                          "data": data, "has_more": False, "next_page": None})


@bp.post(_ROUTE + "/<store_id>/files")
async def add_file(store_id: str):
    account = await _account()
    row = await _vs().add_file(account, store_id, await common.read_json_object())
    return json_response(file_object(row))


@bp.get(_ROUTE + "/<store_id>/files")
async def list_files(store_id: str):
    account = await _account()
    limit, after, order = page_args(100, 20)
    rows, more = await _vs().list_files(account, store_id, status=request.args.get("filter"),
                                        limit=limit, after=after, order=order)
    return json_response(page([file_object(r) for r in rows], more))


@bp.get(_ROUTE + "/<store_id>/files/<file_id>")
async def get_file(store_id: str, file_id: str):
    account = await _account()
    return json_response(file_object(await _vs().get_file(account, store_id, file_id)))


@bp.post(_ROUTE + "/<store_id>/files/<file_id>")
async def update_file(store_id: str, file_id: str):
    account = await _account()
    row = await _vs().update_file(account, store_id, file_id, await common.read_json_object())
    return json_response(file_object(row))


@bp.delete(_ROUTE + "/<store_id>/files/<file_id>")
async def delete_file(store_id: str, file_id: str):
    account = await _account()
    await _vs().delete_file(account, store_id, file_id)
    return json_response({"id": file_id, "object": "vector_store.file.deleted", "deleted": True})


@bp.post(_ROUTE + "/<store_id>/file_batches")
async def create_batch(store_id: str):
    account = await _account()
    b = await _vs().create_batch(account, store_id, await common.read_json_object())
    return json_response(await _vs().batch_object(b))


@bp.get(_ROUTE + "/<store_id>/file_batches/<batch_id>")
async def get_batch(store_id: str, batch_id: str):
    account = await _account()
    return json_response(await _vs().batch_object(await _vs().get_batch(account, store_id, batch_id)))


@bp.post(_ROUTE + "/<store_id>/file_batches/<batch_id>/cancel")
async def cancel_batch(store_id: str, batch_id: str):
    account = await _account()
    b = await _vs().cancel_batch(account, store_id, batch_id)
    return json_response(await _vs().batch_object(b))


@bp.get(_ROUTE + "/<store_id>/file_batches/<batch_id>/files")
async def batch_files(store_id: str, batch_id: str):
    account = await _account()
    await _vs().get_batch(account, store_id, batch_id)
    limit, after, order = page_args(100, 20)
    rows, more = await _vs().list_files(account, store_id, status=request.args.get("filter"),
                                        batch_id=batch_id, limit=limit, after=after, order=order)
    return json_response(page([file_object(r) for r in rows], more))
