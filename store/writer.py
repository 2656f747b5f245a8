"""The Writer: one OS thread that owns the database connection and runs store jobs.

Trio code never touches SQLite itself. It hands `fn(db, *args, **kwargs)` to the
writer with `await writer.call(fn, ...)` and sleeps until the writer thread wakes it
through the trio token; the event loop never blocks on a lock or a disk. Jobs run one
at a time, in submission order, each in its own transaction (or savepoint), so a
failing job cannot affect its neighbours.

Group commit: when jobs are waiting, the writer takes up to `batch_max` of them into
one BEGIN IMMEDIATE transaction, each job inside its own savepoint (its own
write_tx/read_tx nests as one; a job that fails is rolled back to it). One commit
then covers the batch, and results are handed back only after that commit, so no
caller hears "admitted" or "settled" for something a failed commit undid (if the
commit fails, every job of the batch gets its error). Under load this turns dozens
of commits, and the WAL pages each rewrites, into one.

Cancellation stops the *waiting*, never the job: once submitted, a job runs to
completion even if the task that awaited it is cancelled, because a settlement that
has been handed over must not be lost. The cost is that a cancelled `reserve` may
leave a hold its caller never learns about; billing shields its reserve call, and
failing that the hold is found by request id or expires with its TTL.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

import outcome
import trio

from store.db import StoreError, WriterClosed, open_database, write_tx

_STOP = object()


class _Job:
    __slots__ = ()

    def execute(self, db) -> outcome.Outcome:
        self.result = outcome.capture(self.fn, db, *self.args, **self.kwargs)
        return self.result

    def run(self, db) -> None:
        self.execute(db)
        self.deliver(None)

    def deliver(self, failure: BaseException | None) -> None:
        raise NotImplementedError

    def _final(self, failure: BaseException | None) -> outcome.Outcome:
        if failure is not None and isinstance(self.result, outcome.Value):
            return outcome.Error(failure)
        return self.result


class _TrioJob(_Job):
    """A job whose result goes back to a sleeping trio task."""

    __slots__ = ("fn", "args", "kwargs", "task", "token", "result")

    def __init__(self, fn, args, kwargs, task, token) -> None:
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.task = task
        self.token = token
        self.result: outcome.Outcome | None = None

    def deliver(self, failure: BaseException | None) -> None:
        try:
            self.token.run_sync_soon(self._deliver, self._final(failure))
        except trio.RunFinishedError:
            pass  # the run that asked has ended; the job's effect stands regardless

    def _deliver(self, result: outcome.Outcome) -> None:
        # Runs on the trio thread, as does abort below, so the two never interleave.
        if self.task is not None:
            trio.lowlevel.reschedule(self.task, result)
            self.task = None

    def abort(self, raise_cancel) -> trio.lowlevel.Abort:
        self.task = None
        return trio.lowlevel.Abort.SUCCEEDED


def _refuse_abort(raise_cancel) -> trio.lowlevel.Abort:
    return trio.lowlevel.Abort.FAILED


def _deliver_all(results: list) -> None:
    for job, result in results:
        job._deliver(result)


class _SyncJob(_Job):
    """A job whose caller blocks its own (non-trio) thread on the result."""

    __slots__ = ("fn", "args", "kwargs", "done", "result")

    def __init__(self, fn, args, kwargs) -> None:
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.done = threading.Event()
        self.result: outcome.Outcome | None = None

    def deliver(self, failure: BaseException | None) -> None:
        self.result = self._final(failure)
        self.done.set()


class Writer:
    """Owns the store's connections on dedicated daemon threads.

    `start()` opens the database on the first thread (raising here if it cannot);
    `close()` runs every job already queued, closes the database and joins.

    SQLite has one writer, so one thread. On PostgreSQL `threads` > 1 makes this a
    bounded pool: each thread holds one connection (peewee keeps them per thread) and
    takes the next job or batch from the shared queue, so a slow statement holds one
    connection while the others carry on, and none of it runs on the event loop.
    """

    def __init__(self, path: str, *,
                 opener: Callable[[str], Any] = open_database, batch_max: int = 64,
                 threads: int = 1) -> None:
        self._path = path
        self._opener = opener
        self._batch_max = max(1, batch_max)   # 1: every job commits on its own
        self._threads_wanted = max(1, threads)
        self._pool: list[threading.Thread] = []
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        # Guards the running flag against a submit racing close(): a job queued
        # behind the stop marker would never run and its caller would wait forever.
        self._lock = threading.Lock()
        self._running = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("a Writer starts once")
        opened: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, args=(opened,),
                                        name=f"store-writer:{self._path}", daemon=True)
        self._thread.start()
        failure = opened.get()
        if failure is not None:
            self._thread.join()
            raise failure
        db = opened.get()
        self._pool = [self._thread]
        for n in range(1, self._threads_wanted):
            extra = threading.Thread(target=self._loop, args=(db,), daemon=True,
                                     name=f"store-writer-{n}:{self._path}")
            extra.start()
            self._pool.append(extra)
        self._running = True

    def _serve(self, opened: queue.SimpleQueue) -> None:
        try:
            db = self._opener(self._path)
        except BaseException as exc:
            opened.put(exc)
            return
        opened.put(None)
        opened.put(db)     # for the pool's other threads, which connect on first use
        self._loop(db)

    def _loop(self, db) -> None:
        try:
            stop = False
            while not stop and (job := self._jobs.get()) is not _STOP:
                batch = [job]
                while len(batch) < self._batch_max:
                    try:
                        more = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if more is _STOP:
                        stop = True
                        break
                    batch.append(more)
                if len(batch) == 1:
                    job.run(db)
                else:
                    self._run_batch(db, batch)
        finally:
            db.close()

    @staticmethod
    def _run_batch(db, batch: list) -> None:
        failure: BaseException | None = None
        try:
            with write_tx(db):
                for job in batch:
                    with db.savepoint() as savepoint:
                        if isinstance(job.execute(db), outcome.Error):
                            # Whatever the job wrote before failing goes with it.
                            savepoint.rollback()
        except StoreError as exc:   # the commit itself failed: nothing in it happened
            failure = exc
        except Exception as exc:    # a bug in the batching itself: fail the jobs, not the thread
            failure = StoreError(f"group commit failed: {exc!r}")
        # One wake-up of each waiting trio loop for the whole batch, not one per job:
        # each wake-up is a socket write on this thread and a read on the loop's.
        by_token: dict[Any, list] = {}
        for job in batch:
            if isinstance(job, _TrioJob):
                by_token.setdefault(job.token, []).append((job, job._final(failure)))
            else:
                job.deliver(failure)
        for token, results in by_token.items():
            try:
                token.run_sync_soon(_deliver_all, results)
            except trio.RunFinishedError:
                pass  # the run that asked has ended; the jobs' effects stand regardless

    def _submit(self, job) -> None:
        with self._lock:
            if not self._running:
                raise WriterClosed("the store writer is not running")
            self._jobs.put(job)

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run `fn(db, *args, **kwargs)` on the writer thread; its result or exception
        comes back here. A task already cancelled submits nothing; one cancelled
        while waiting stops waiting, and the job still runs (see module docstring)."""
        await trio.lowlevel.checkpoint_if_cancelled()
        job = _TrioJob(fn, args, kwargs, trio.lowlevel.current_task(),
                       trio.lowlevel.current_trio_token())
        self._submit(job)
        return await trio.lowlevel.wait_task_rescheduled(job.abort)

    async def call_shielded(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`call` that no cancellation interrupts: the caller waits for the job's result
        as it would inside a shielded cancel scope, without entering one (the money
        path's hold is taken this way once per request). A pending cancellation is
        delivered at the caller's next checkpoint."""
        job = _TrioJob(fn, args, kwargs, trio.lowlevel.current_task(),
                       trio.lowlevel.current_trio_token())
        self._submit(job)
        return await trio.lowlevel.wait_task_rescheduled(_refuse_abort)

    def call_sync(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`call` for plain threads (CLI, tests): blocks until the job has run."""
        if threading.current_thread() in self._pool:
            raise RuntimeError("a writer job cannot wait on another job: it would "
                               "wait on itself")
        if trio.lowlevel.in_trio_run():
            raise RuntimeError("call_sync would block the trio loop; await call()")
        job = _SyncJob(fn, args, kwargs)
        self._submit(job)
        job.done.wait()
        return job.result.unwrap()

    @property
    def queue_depth(self) -> int:
        """Jobs waiting to run (approximate), for the dashboard."""
        return self._jobs.qsize()

    def close(self) -> None:
        """Stop taking jobs, finish the queued ones, close the db, join the thread.
        Safe to call more than once. Blocks; from trio use `aclose()`."""
        with self._lock:
            was_running, self._running = self._running, False
            if was_running:
                for _ in self._pool:
                    self._jobs.put(_STOP)
        for thread in self._pool or [self._thread]:
            if thread is not None and thread is not threading.current_thread():
                thread.join()

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(self.close)

    def __enter__(self) -> Writer:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
