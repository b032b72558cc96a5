"""Push rounds at fleet scale: challenges that write nothing, appraisal outside any lock, commits in groups.

* ``challenge``: the node's view (:mod:`veritee.service.verifier_views`: kept in memory on SQLite, else one read
  of its row, no lock) and a nonce that is an authenticated token (:mod:`veritee.service.verifier_tokens`) carrying
  the round, IMA offset and event log request it was made for. Nothing is written.
* ``push``: the nonce is checked (authentic, this node and registration, not expired, the node's current round, not
  spent here) and the evidence appraised, without holding anything; the outcome then goes to a group commit
  (:class:`GroupCommit` for threads, :class:`AsyncGroupCommit` for the event loop) that commits the rounds arriving
  together in one transaction. The commit locks each node's row and refuses a round whose node moved on since the
  view was taken (another answer to the same challenge won; the node re-registered, was revoked, marked unreachable,
  reassigned): a challenge answers once, and a round commits only over the state it was appraised against.
* ``push`` returns only after its round is committed: a node that got its verdict never loses its attestation.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from veritee.errors import FreshnessError, NotFoundError, StorageError, VeriteeError
from veritee.service.node_wire import Challenge, NodeEvidence
from veritee.service.verifier_commit import Committed, Committer, Pushed, RebootMark, refusal
from veritee.service.verifier_config import NodeRebootedError, VerifierConfig
from veritee.service.verifier_db import reading
from veritee.service.verifier_policies import PolicyCache
from veritee.service.verifier_rounds import (
    BootLogCache,
    EarSigner,
    RoundOutcome,
    appraise_round,
    challenge_shape,
    snapshot_of,
)
from veritee.service.verifier_tokens import ChallengeTokens, NodeBinding, SpentNonces
from veritee.service.verifier_views import NodeView, NodeViews, basis_of
from veritee.store.db import Database
from veritee.store.verifier_repo import round_row

__all__ = ["AsyncGroupCommit", "GroupCommit", "PushRounds"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass(eq=False)
class _Waiter(Generic[T, R]):
    item: T
    event: threading.Event = field(default_factory=threading.Event)
    done: bool = False
    result: R | None = None
    error: VeriteeError | None = None


class GroupCommit(Generic[T, R]):
    """Group commit: ``submit`` blocks until its item is committed and returns its result (or raises its error).

    Whoever submits while no commit runs leads: it commits everything queued (up to ``max_batch`` items) in one
    call of ``commit``, hands out the results, and passes the lead to the first item still waiting. Items that
    arrive during a commit wait for the next one, so the batches grow with the load and nothing waits for a timer.
    ``commit`` returns one result per item; a VeriteeError among them is raised to that item's submitter, one it
    raises goes to every item of the batch."""

    def __init__(self, commit: Callable[[list[T]], Sequence[R | VeriteeError]], *, max_batch: int) -> None:
        self._commit = commit
        self._max = max(1, max_batch)
        self._lock = threading.Lock()
        self._queue: list[_Waiter[T, R]] = []
        self._busy = False
        self.batches = 0
        self.items = 0

    def submit(self, item: T) -> R:
        waiter: _Waiter[T, R] = _Waiter(item)
        with self._lock:
            self._queue.append(waiter)
            lead = not self._busy
            self._busy = True
        if not lead:
            waiter.event.wait()  # set when our item is done, or when we are to lead
        while not _finished(waiter):
            with self._lock:
                batch, self._queue = self._queue[: self._max], self._queue[self._max :]
            try:
                self._run(batch)
            finally:
                self._pass_lead(waiter)
        if waiter.error is not None:
            raise waiter.error
        return waiter.result  # type: ignore[return-value]  # set with done when there is no error

    def _pass_lead(self, leader: _Waiter[T, R]) -> None:
        """After a batch: lead on while our own item waits, else hand the lead to the first waiting item."""
        with self._lock:
            if not leader.done:
                if leader in self._queue:
                    return  # our item is still queued: we commit the next batch too
                leader.error, leader.done = StorageError("the commit was interrupted"), True
            if self._queue:
                self._queue[0].event.set()
            else:
                self._busy = False

    def _run(self, batch: list[_Waiter[T, R]]) -> None:
        results: Sequence[R | VeriteeError] | None = None
        try:
            results = self._commit([w.item for w in batch])
        except VeriteeError as exc:
            results = [exc] * len(batch)
        finally:  # whatever happened, every submitter of the batch gets an answer, none waits forever
            if results is None or len(results) != len(batch):
                results = [StorageError("the commit of this batch failed")] * len(batch)
            self.batches += 1
            self.items += len(batch)
            for waiter, result in zip(batch, results, strict=True):
                if isinstance(result, VeriteeError):
                    waiter.error = result
                else:
                    waiter.result = result
                waiter.done = True
                waiter.event.set()


def _finished(waiter: _Waiter[Any, Any]) -> bool:
    return waiter.done


class AsyncGroupCommit(Generic[T, R]):
    """Group commit for coroutines: ``await submit(item)`` returns once the item is committed. One task on the
    running loop commits everything queued in one call of ``commit``, and what arrives meanwhile goes in the next
    batch. Results as :class:`GroupCommit`.

    The commit runs in a worker thread, or ``inline`` on the loop itself (SQLite: a commit is a few milliseconds
    of local work; in a thread it would wait for the interpreter lock each time SQLite hands it back, while the
    loop appraises, and take a hundred times longer)."""

    def __init__(
        self, commit: Callable[[list[T]], Sequence[R | VeriteeError]], *, max_batch: int, inline: bool = False
    ) -> None:
        self._commit = commit
        self._max = max(1, max_batch)
        self._inline = inline
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.items = 0

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._queue.append((item, future))
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        if self._inline:
            await asyncio.sleep(0)  # let the requests that are ready join the first batch
        while self._queue:
            batch, self._queue = self._queue[: self._max], self._queue[self._max :]
            results: Sequence[R | VeriteeError] | None = None
            try:
                items = [item for item, _ in batch]
                results = self._commit(items) if self._inline else await asyncio.to_thread(self._commit, items)
            except VeriteeError as exc:
                results = [exc] * len(batch)
            finally:  # every waiter gets an answer, whatever happened (cancelled: the commit may have happened)
                if results is None or len(results) != len(batch):
                    results = [StorageError("the commit of this batch failed")] * len(batch)
                self.batches += 1
                self.items += len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, VeriteeError):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
            if self._inline:
                await asyncio.sleep(0)  # answer this batch and take in new requests before the next one


def _binding(view: NodeView) -> NodeBinding:
    return NodeBinding(view.node_id, view.ak_public, view.activated_at)


def _refuse(view: NodeView | None, node_id: str) -> NodeView:
    refused = refusal(view, node_id)
    if refused is not None or view is None:
        raise refused or NotFoundError(f"no node {node_id!r}")
    return view


class PushRounds:
    """Challenges and pushed evidence of push-mode nodes (see the module docstring)."""

    INLINE_LIMIT = 256 * 1024
    """Evidence up to this size (IMA text, no event log) is appraised on the event loop by :meth:`push_async`;
    bigger evidence (a full round) in a worker thread, so it never holds up the other requests for long."""

    def __init__(
        self,
        db: Database,
        config: VerifierConfig,
        *,
        tokens: ChallengeTokens,
        views: NodeViews,
        policies: PolicyCache,
        boot_logs: BootLogCache,
        signer: EarSigner,
        committer: Committer,
        now: Callable[[], datetime],
    ) -> None:
        self.db = db
        self.config = config
        self.tokens = tokens
        self.views = views
        self.policies = policies
        self.boot_logs = boot_logs
        self.signer = signer
        self.spent = SpentNonces()
        self._now = now
        self._selection = {bank: list(pcrs) for bank, pcrs in config.pcr_selection.items()}
        self.commits: GroupCommit[Pushed | RebootMark, Committed] = GroupCommit(
            committer.commit_pushes, max_batch=config.batch_size
        )
        self.local_db = db.dialect == "sqlite"
        """Database work of :meth:`push_async` and :meth:`challenge_async` is done on the event loop (SQLite: local,
        short) rather than in worker threads (PostgreSQL: network round trips)."""
        self.async_commits: AsyncGroupCommit[Pushed | RebootMark, Committed] = AsyncGroupCommit(
            committer.commit_pushes, max_batch=config.batch_size, inline=self.local_db
        )

    # --- the node's row --------------------------------------------------------------------------------------------
    def read_view(self, node_id: str) -> NodeView:
        """The node's view from the database (kept when views are cached); NotFoundError, EvidenceRefusedError."""
        with reading(self.db) as connection:
            row = round_row(connection, node_id)
        view = NodeView.of(row) if row is not None else None
        if view is not None:
            self.views.put(view)
        return _refuse(view, node_id)

    def cached_view(self, node_id: str) -> NodeView | None:
        """The kept view of an attestable node (None: read it; a kept view that refuses is read again)."""
        view = self.views.get(node_id)
        return view if view is not None and refusal(view, node_id) is None else None

    def _view(self, node_id: str) -> NodeView:
        return self.cached_view(node_id) or self.read_view(node_id)

    # --- challenges -----------------------------------------------------------------------------------------------
    def challenge(self, node_id: str) -> Challenge:
        """A fresh challenge (nothing is written: the nonce carries it)."""
        return self.challenge_for(self._view(node_id))

    async def challenge_async(self, node_id: str) -> Challenge:
        """:meth:`challenge` for the event loop."""
        return self.challenge_for(await self._view_async(node_id))

    async def _view_async(self, node_id: str) -> NodeView:
        view = self.cached_view(node_id)
        if view is not None:
            return view
        return self.read_view(node_id) if self.local_db else await asyncio.to_thread(self.read_view, node_id)

    def challenge_for(self, view: NodeView) -> Challenge:
        offset, want_event_log = challenge_shape(snapshot_of(view))
        nonce = self.tokens.issue(
            _binding(view), round_=view.round, ima_offset=offset, want_event_log=want_event_log, now=self._now()
        )
        return Challenge(nonce, self._selection, offset, want_event_log)

    # --- evidence -------------------------------------------------------------------------------------------------
    def push(self, node_id: str, evidence: NodeEvidence) -> tuple[RoundOutcome, Committed]:
        """Appraise evidence answering one of our challenges and commit it; returns once it is committed.

        FreshnessError for a nonce that is not an open challenge of this node (never made, expired, answered, or
        the node's state moved on); NodeRebootedError (after recording that a full round is due) when the quote
        shows a reboot since the challenge."""
        view = self._view(node_id)
        try:
            item = self.appraise(view, evidence)
        except NodeRebootedError as rebooted:
            self._settle(RebootMark(node_id, view.round), self._commit_sync(RebootMark(node_id, view.round)))
            raise rebooted from None
        return item.outcome, self._settle(item, self._commit_sync(item))

    async def push_async(self, node_id: str, evidence: NodeEvidence) -> tuple[RoundOutcome, Committed]:
        """:meth:`push` for the event loop: reads and big appraisals in a worker thread, the commit grouped."""
        view = await self._view_async(node_id)
        inline = evidence.event_log is None and len(evidence.ima_entries) <= self.INLINE_LIMIT
        try:
            item = self.appraise(view, evidence) if inline else await asyncio.to_thread(self.appraise, view, evidence)
        except NodeRebootedError as rebooted:
            mark = RebootMark(node_id, view.round)
            self._settle(mark, await self._commit_async(mark))
            raise rebooted from None
        return item.outcome, self._settle(item, await self._commit_async(item))

    def appraise(self, view: NodeView, evidence: NodeEvidence) -> Pushed:
        """Check the nonce and appraise (no I/O but a kept event log the cache lacks); NodeRebootedError when a
        full round is due."""
        now = self._now()
        node_id = view.node_id
        claims = self.tokens.open(_binding(view), evidence.nonce, now)
        if not self.tokens.same_round(claims, view.round) or not self.spent.spend(evidence.nonce, claims.expires, now):
            raise FreshnessError(f"the nonce is not a pending challenge of {node_id!r} (expired, used or unknown)")
        snap = snapshot_of(view)
        ima_line = snap.ima.next_line if snap.ima is not None else None
        offset = claims.ima_offset
        if (offset and (snap.want_full or ima_line != offset)) or (
            not claims.want_event_log and snap.event_log_digest is None
        ):
            raise FreshnessError("the node's state moved on since this challenge: ask for a new one")
        challenge = Challenge(evidence.nonce, self._selection, offset, claims.want_event_log)
        policy = self.policies.for_node(snap.policy_name, snap.group_name)
        outcome = appraise_round(
            snap,
            challenge,
            evidence,
            policy,
            boot_logs=self.boot_logs,
            signer=self.signer,
            now=now,
            keep_evidence=self.config.keep_evidence,
        )
        return Pushed(outcome, basis_of(view))

    def _commit_sync(self, item: Pushed | RebootMark) -> Committed | VeriteeError:
        try:
            return self.commits.submit(item)
        except VeriteeError as exc:
            return exc

    async def _commit_async(self, item: Pushed | RebootMark) -> Committed | VeriteeError:
        try:
            return await self.async_commits.submit(item)
        except VeriteeError as exc:
            return exc

    def _settle(self, item: Pushed | RebootMark, result: Committed | VeriteeError) -> Committed:
        """Keep the node's new view (a plain round) or forget it; raise the error of a round not committed."""
        view = self.views.get(item.node_id)
        if isinstance(result, Committed) and result.values is not None and view is not None:
            if view.round == item.round:
                self.views.put(view.after(result.values))
        else:
            self.views.drop(item.node_id)
        if isinstance(result, VeriteeError):
            raise result
        return result
