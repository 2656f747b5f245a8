"""store.db's transaction helpers for table modules that store.models imports before
store.db has finished loading (so they are looked up when first used)."""


def write_tx(db):
    from store.db import write_tx as tx
    return tx(db)


def read_tx(db):
    from store.db import read_tx as tx
    return tx(db)
