"""The ledger: one group commit of the per-mail record for every channel of a worker.

Before a channel hands over a mail, the answer to its previous mail and the "handed over"
mark of the next one are made durable in one commit shared with every other channel, so a
kill at any instant repeats at most one mail per open connection, with the same Message-ID.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, cast

from worker.domain.send_rows import Outcome
from worker.errors import StoreError

GATHER_S = 0.0       # one turn of the loop: the answers that arrived meanwhile join the commit
GATHER_UP_TO = 6


class RecordStore(Protocol):
    """The one write the ledger makes: answers recorded, next mails marked handed over."""

    def record(self, worker_id: str, outcomes: list[Outcome],
               hand_over: list[str]) -> set[str]: ...


class LoopRecordStore(Protocol):
    """``record`` as a coroutine, awaited on the event loop (PostgreSQL's own connection)."""

    async def record(self, worker_id: str, outcomes: list[Outcome],
                     hand_over: list[str]) -> set[str]: ...

    async def close(self) -> None: ...


class Ledger:
    """Group commit of the per-mail ledger for every channel of this worker.

    Args:
        store: where ``record`` commits: the sending store, or one whose ``record`` is a
            coroutine (awaited on the loop; ``inline`` and ``executor`` are then unused).
        worker_id: whose claims the handed-over marks must still hold.
        executor: the thread that commits when ``inline`` is false.
        inline: commit on the event loop itself (SQLite answers in well under a millisecond).
    """

    def __init__(self, store: RecordStore | LoopRecordStore, worker_id: str,
                 executor: ThreadPoolExecutor, inline: bool) -> None:
        self.store = store
        self.on_loop = inspect.iscoroutinefunction(store.record)
        self.worker_id = worker_id
        self.executor = executor
        self.pending: list[tuple[list[Outcome], list[str], asyncio.Future[set[str]]]] = []
        self.wake = asyncio.Event()
        self.inline = inline
        self.commits = 0
        self.commit_s = 0.0
        self.durations: deque[float] = deque(maxlen=4096)  # recent commit times
        self.committed = 0
        # Message-IDs queued or with a channel, until their answer (or their withdrawal) is
        # recorded: the runner does not queue a second copy of one meanwhile.
        self.sending: set[str] = set()
        self.stopped: StoreError | None = None  # the ledger task died: commits fail at once

    async def commit(self, outcomes: list[Outcome], hand_over: list[str]) -> set[str]:
        """Join the next group commit; returns the Message-IDs this worker may hand over."""
        if self.stopped is not None:
            raise self.stopped
        future: asyncio.Future[set[str]] = asyncio.get_running_loop().create_future()
        self.pending.append((outcomes, hand_over, future))
        self.wake.set()
        return await future

    async def run(self) -> None:
        """The side task: gather the channels' requests and commit them together."""
        loop = asyncio.get_running_loop()
        while True:
            await self.wake.wait()
            self.wake.clear()
            if len(self.pending) < GATHER_UP_TO:
                # Let the other connections' answers join this commit: fewer, larger commits.
                # Longer waits (1 to 10 ms) were measured slower: while a commit runs, the
                # next group gathers by itself.
                await asyncio.sleep(GATHER_S)
            batch, self.pending = self.pending, []
            if not batch:
                continue
            outcomes = [o for b in batch for o in b[0]]
            hand_over = [h for b in batch for h in b[1]]
            started = time.perf_counter()
            try:
                if self.on_loop:
                    allowed = await cast(LoopRecordStore, self.store).record(
                        self.worker_id, outcomes, hand_over)
                elif self.inline:
                    # Waiting for a thread to get the interpreter lock back from a busy event
                    # loop costs more than SQLite's commit.
                    allowed = cast(RecordStore, self.store).record(self.worker_id, outcomes,
                                                                   hand_over)
                else:
                    allowed = await loop.run_in_executor(
                        self.executor, cast(RecordStore, self.store).record, self.worker_id,
                        outcomes, hand_over)
                self.commits += 1
                self.committed += len(outcomes)
                self.commit_s += time.perf_counter() - started
                self.durations.append(time.perf_counter() - started)
            except Exception as exc:  # noqa: BLE001 - every waiter must learn of the failure
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            # Settled: a later plan of these steps (a retry after a deferral) may be queued.
            self.sending.difference_update(o.message_id for o in outcomes)
            self.sending.difference_update(h for h in hand_over if h not in allowed)
            for _, handed, future in batch:
                if not future.done():
                    future.set_result(allowed & set(handed))

    def fail_pending(self, cause: BaseException) -> None:
        """The ledger task is gone: no channel may wait for it forever."""
        self.stopped = StoreError(f"the ledger stopped: {cause!r}")
        batch, self.pending = self.pending, []
        for _, _, future in batch:
            if not future.done():
                future.set_exception(self.stopped)

    async def close(self) -> None:
        """Close the store's own connection, if it has one (the worker is stopping)."""
        if self.on_loop:
            await cast(LoopRecordStore, self.store).close()
