"""Cursor pagination shared by the resource listings: newest first by default, `after`
an id of the caller's own previous page (an unknown id starts from the top)."""
from __future__ import annotations


def page(db, q, model, *, after: str | None, order: str, limit: int, id_field=None):
    """Rows of `q` (already restricted to one owner) after the row `after`, and whether
    more follow. Ordered by created_at then id, so equal timestamps still page stably."""
    ident = id_field if id_field is not None else model.id
    desc = order != "asc"
    if after:
        anchor = q.clone().where(ident == after).first(db)
        if anchor is not None:
            at, aid = anchor.created_at, getattr(anchor, ident.name)
            if desc:
                q = q.where((model.created_at < at) | ((model.created_at == at) & (ident < aid)))
            else:
                q = q.where((model.created_at > at) | ((model.created_at == at) & (ident > aid)))
    orders = ((model.created_at.desc(), ident.desc()) if desc
              else (model.created_at.asc(), ident.asc()))
    rows = list(q.order_by(*orders).limit(limit + 1).execute(db))
    return rows[:limit], len(rows) > limit
