"""ConcurrentQueue: MPMC queues (FIFO, LIFO, priority) for threads and event loops alike.

The queues join free-threaded worker threads and asyncio code: the blocking
methods (``put``/``get``/``put_many``/``get_many``/``join``) are for threads,
the ``aput``/``aget`` coroutines for event loops (any loop, in any thread).
``q.sync_q`` is a :class:`queue.Queue`-compatible view and ``q.async_q`` an
:class:`asyncio.Queue`-compatible one, over the same items. ``shutdown()`` (or
its alias ``close()``) ends the stream for everybody at once.

Design: one mutex guards the items and three FIFO lists of *waiters*
(getters, putters, joiners). There are no ``Condition`` objects and nothing is
notified unless somebody is actually waiting. A waiting thread owns a private
one-shot lock it sleeps on; a waiting coroutine owns a future of its own loop
(woken with ``loop.call_soon_threadsafe``: no thread per waiter).

A wake-up is only a *notification*: the woken waiter takes the mutex again and
does its own step (takes an item, puts its item), exactly once, under the
mutex. No item and no slot is ever in flight between two parties, so a waiter
that is cancelled, times out or is interrupted (``KeyboardInterrupt``) after it
was woken has taken nothing and put nothing; it passes its notification on to
the next waiter. Every state change made under the mutex is either complete or
undone when an exception (including one raised by a signal handler) escapes
it, and then every waiter is woken to re-check, so no wake-up is ever lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import queue
import sys
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from itertools import islice
from time import monotonic as _monotonic
from typing import Any, ClassVar, Generic, NoReturn, TypeVar

from conctools._internal.timeouts import check_timeout

__all__ = [
    "AsyncQueueView",
    "ConcurrentLifoQueue",
    "ConcurrentPriorityQueue",
    "ConcurrentQueue",
    "PartialPut",
    "QueueClosed",
    "QueueShutDown",
    "ShutDown",
    "SyncQueueView",
]

T = TypeVar("T")

if sys.version_info >= (3, 13):  # pragma: no cover - depends on the interpreter
    ShutDown = queue.ShutDown
    QueueShutDown = asyncio.QueueShutDown
else:  # pragma: no cover - depends on the interpreter

    class ShutDown(Exception):
        """Raised by a shut-down queue (``queue.ShutDown`` from Python 3.13)."""

    class QueueShutDown(Exception):
        """Raised by a shut-down queue's ``async_q`` (``asyncio.QueueShutDown`` from 3.13)."""


class QueueClosed(ShutDown, QueueShutDown):
    """Raised by a queue that was shut down (:meth:`ConcurrentQueue.shutdown` / ``close()``).

    Every ``put`` after the shutdown raises it; a ``get`` raises it once the
    queue is shut down *and* empty. It subclasses :class:`queue.ShutDown` and
    :class:`asyncio.QueueShutDown` (on Python < 3.13, where those do not exist,
    :class:`conctools.queue.ShutDown` and :class:`conctools.queue.QueueShutDown`),
    so code written for either stdlib queue catches it unchanged.

    ``count`` is set by :meth:`ConcurrentQueue.put_many` to the number of items
    that went in before the queue was shut down (``None`` otherwise).
    """

    def __init__(self, *args: object, count: int | None = None) -> None:
        super().__init__(*args)
        self.count = count


class PartialPut(queue.Full):
    """Raised by :meth:`ConcurrentQueue.put_many` when the timeout expires first.

    A subclass of :class:`queue.Full`. ``count`` is how many items went in
    (always the *first* ``count`` items of the batch, in order);
    ``remaining`` is the list of items that did not.
    """

    def __init__(self, count: int, remaining: list[Any]) -> None:
        super().__init__(
            f"put {count} of {count + len(remaining)} items before the timeout expired"
        )
        self.count = count
        self.remaining = remaining


_TIMEOUT_MAX = threading.TIMEOUT_MAX
_WAIT: Any = object()  # an attempt that must wait
_GET, _PUT, _JOIN = 0, 1, 2


def _check_timeout(timeout: float | None) -> float | None:
    """Validate a timeout (queue.Queue rule); ``None`` means wait forever."""
    return check_timeout(timeout)


def _check_maxsize(maxsize: int) -> int:
    if isinstance(maxsize, bool) or not isinstance(maxsize, int):
        raise TypeError(f"maxsize must be an int, not {type(maxsize).__name__}")
    return maxsize


# ------------------------------------------------------------------- waiters
# ``listed``: the waiter is in its list; ``notified``: a waker chose it. Both
# change only under the queue's mutex. The steps of a wake-up are ordered so
# that an exception delivered between two bytecodes (signal handlers run only
# at calls and backward jumps) leaves either a waiter still listed (and the
# error path wakes every listed waiter) or a waiter already woken.


class _ThreadWaiter:
    """A blocked thread. ``lock`` is a one-shot signal (held = not signalled),
    never a mutex: it protects nothing, the waker releases it exactly once."""

    __slots__ = ("listed", "lock", "notified")
    is_async = False

    def __init__(self) -> None:
        self.listed = False
        self.notified = False
        lock = threading.Lock()
        # Held = not signalled. A fresh private lock: the non-blocking acquire
        # always succeeds, and an interrupt right after it leaves only this
        # unreferenced waiter behind (it is listed nowhere yet).
        lock.acquire(False)
        self.lock = lock

    def wake(self) -> bool:
        self.lock.release()
        return True


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class _AsyncWaiter:
    """A suspended coroutine: it awaits ``fut`` on ``loop``. Waking is idempotent."""

    __slots__ = ("fut", "listed", "loop", "notified")
    is_async = True

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.listed = False
        self.notified = False
        self.loop = loop
        self.fut: asyncio.Future[None] = loop.create_future()

    def wake(self) -> bool:
        """Resolve the future on its loop; False if the loop is closed."""
        loop = self.loop
        try:
            if asyncio.events._get_running_loop() is loop:
                _resolve(self.fut)
            else:
                loop.call_soon_threadsafe(_resolve, self.fut)
        except RuntimeError:  # loop closed: this waiter will never run
            return False
        return True


_Waiter = _ThreadWaiter | _AsyncWaiter


def _notify(lst: deque[Any]) -> bool:
    """Wake the first live waiter of ``lst`` (mutex held); False if there is none."""
    while lst:
        w = lst[0]
        if w.is_async:
            # Wake first (idempotent), unlist after: interrupted in between,
            # the waiter is still listed and the error path wakes it again.
            w.notified = True
            ok = w.wake()
            del lst[0]
            w.listed = False
            if ok:
                return True
        else:
            # Release, then unlist. Interrupted in between (Python 3.10 can
            # deliver a signal between any two instructions), the waiter is
            # still listed and the error path wakes it again, which is
            # harmless: its one-shot lock is never waited on twice.
            w.notified = True
            if w.lock.locked():
                w.lock.release()
            del lst[0]
            w.listed = False
            return True
    return False


def _notify_all(lst: deque[Any]) -> None:
    while lst:
        _notify(lst)


def _unlist(lst: deque[Any], w: Any) -> None:
    if w.listed:
        w.listed = False
        # ``listed`` can be stale by one step after an interrupted change.
        with contextlib.suppress(ValueError):
            lst.remove(w)


# --------------------------------------------------------------------- queue


class ConcurrentQueue(Generic[T]):
    """An MPMC FIFO queue (``maxsize <= 0``: unbounded) with shutdown, batches and asyncio.

    **Thread safety.** Every method may be called from any number of threads
    and event loops at once (threads use ``put``/``get``/``put_many``/
    ``get_many``/``join``, coroutines ``aput``/``aget`` or the ``async_q``
    view; the :class:`queue.Queue` names and exceptions are kept, and
    ``sync_q`` / ``async_q`` are drop-in :class:`queue.Queue` /
    :class:`asyncio.Queue` views over the same items). One internal mutex
    guards the items and the waiter lists; it is held only for a few list
    operations and never while user code runs (except item comparisons in
    :class:`ConcurrentPriorityQueue`, as in :class:`queue.PriorityQueue`).
    Guarantees: FIFO order of accepted items; nothing lost or duplicated; the
    items of one producer reach the consumers in the order it put them; a put
    never makes the queue hold more than ``maxsize`` items.

    **Atomic operations.** ``put``, ``get``, ``put_nowait``, ``get_nowait``,
    ``aput``, ``aget``, ``task_done``, ``shutdown`` and ``close`` are
    linearizable. ``get_many`` takes the items that are there (up to
    ``max_items``) as one atomic step; one that had to wait takes what is
    there once woken. ``put_many`` is atomic when the whole batch fits;
    otherwise it puts a prefix atomically and the rest as room appears, in
    order, and may interleave with other producers' items. ``qsize``,
    ``empty``, ``full`` and ``unfinished_tasks`` are linearizable snapshots
    (read under the mutex, possibly stale once returned). A call that
    raises has not taken or put anything (``put_many``: the items before the
    failed step stay, see ``count``), with one exception inherent to Python:
    an asynchronous exception (``KeyboardInterrupt``) delivered in the last
    instruction of the call, after the mutex was released.

    **Iteration.** ``for item in q`` (and ``async for item in q``) consumes:
    it is a loop of ``get()`` that ends when the queue is shut down and
    drained. Several consumers may iterate at once; each item goes to exactly
    one.

    **Blocking and timeouts.** ``put`` blocks while the queue is full,
    ``get`` while it is empty, ``join`` until every item put was marked done
    with ``task_done``; ``put``/``get`` take ``block``/``timeout`` exactly like
    :class:`queue.Queue` (``None`` or ``inf`` waits forever, huge values are
    clamped, a negative or NaN timeout raises :class:`ValueError`, a bool or
    non-number :class:`TypeError`). ``join(timeout)`` returns False when the
    timeout expires. ``shutdown()`` wakes every blocked putter and getter,
    threads and coroutines, at once: puts then raise :class:`QueueClosed`, gets
    drain the remaining items and then raise it. A waiter that is woken
    and then times out, is cancelled or is interrupted passes its wake-up on;
    a cancelled ``aget`` has taken nothing, a cancelled ``aput`` has put
    nothing. Waiters are woken first come, first served; a call arriving
    while a woken waiter has not run yet may be served first (as with
    :class:`queue.Queue`), and the woken waiter then waits again at the head.

    **Complexity.** ``put``/``get`` are O(1) (O(log n) for the priority
    queue); ``put_many``/``get_many`` are O(k) for k items with a single lock
    acquisition; a timed-out or cancelled waiter costs O(number of waiters)
    to unregister. No thread or task is created per waiter.
    """

    __slots__ = (
        "__weakref__",
        "_async_view",
        "_closed",
        "_getters",
        "_items",
        "_joiners",
        "_lock",
        "_maxsize",
        "_putters",
        "_sync_view",
        "_unfinished",
    )

    # Where items leave: 0 = the left end of the deque (FIFO), -1 = the right
    # end (LIFO), None = a heap (priority).
    _head: ClassVar[int | None] = 0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        hooks = [h for h in ("_init", "_qsize", "_put", "_get") if h in cls.__dict__]
        if hooks:
            raise TypeError(
                f"{cls.__name__} overrides {', '.join(hooks)}: {ConcurrentQueue.__name__} "
                "does not call queue.Queue's storage hooks; subclass ConcurrentLifoQueue or "
                "ConcurrentPriorityQueue for another order, or wrap the queue"
            )

    def __init__(self, maxsize: int = 0) -> None:
        self._maxsize = _check_maxsize(maxsize)
        self._lock = threading.Lock()
        self._items: Any = self._new_items()
        self._getters: deque[_Waiter] = deque()
        self._putters: deque[_Waiter] = deque()
        self._joiners: deque[_Waiter] = deque()
        self._closed = False
        self._unfinished = 0
        self._sync_view: SyncQueueView[T] | None = None
        self._async_view: AsyncQueueView[T] | None = None

    def _new_items(self) -> Any:
        return deque()

    # ------------------------------------------------------------------ state

    @property
    def maxsize(self) -> int:
        """The bound (``<= 0``: unbounded). Assignable, as with :class:`queue.Queue`.

        Raising the bound lets blocked putters in at once; lowering it below
        the current size removes nothing (puts block until gets make room).
        """
        return self._maxsize

    @maxsize.setter
    def maxsize(self, value: int) -> None:
        value = _check_maxsize(value)
        with self._lock:
            try:
                self._maxsize = value
                _notify_all(self._putters)  # each re-checks the room
            except BaseException:
                self._wake_everyone_locked()
                raise

    @property
    def closed(self) -> bool:
        """True once :meth:`shutdown` (or :meth:`close`) has been called."""
        return self._closed

    @property
    def is_shutdown(self) -> bool:
        """True once :meth:`shutdown` has been called (``queue.Queue.is_shutdown``)."""
        return self._closed

    # The four readers below take the mutex: a put changes both the items and
    # the task count, and a reader that saw one change but not the other would
    # break linearizability (as queue.Queue, which reads under its mutex too).

    @property
    def unfinished_tasks(self) -> int:
        """Items put and not yet marked done with :meth:`task_done` (a snapshot)."""
        with self._lock:
            return self._unfinished

    def qsize(self) -> int:
        """Number of items in the queue now (a snapshot)."""
        with self._lock:
            return len(self._items)

    def empty(self) -> bool:
        """True if the queue holds no item now (a snapshot)."""
        with self._lock:
            return not self._items

    def full(self) -> bool:
        """True if a ``put`` would block now (a snapshot; False when unbounded)."""
        with self._lock:
            return 0 < self._maxsize <= len(self._items)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<{type(self).__name__} {state} qsize={len(self._items)} maxsize={self._maxsize} "
            f"unfinished={self._unfinished} getters={len(self._getters)} "
            f"putters={len(self._putters)}>"
        )

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError(
            f"cannot pickle {type(self).__name__!r} object: a queue shared between threads "
            "is not copied; move its items with get_many()/put_many()"
        )

    def __copy__(self) -> NoReturn:
        raise TypeError(f"cannot copy {type(self).__name__!r} object (see the queue docs)")

    def __deepcopy__(self, memo: Any) -> NoReturn:
        raise TypeError(f"cannot deepcopy {type(self).__name__!r} object (see the queue docs)")

    # ---------------------------------------------------------------- views

    @property
    def sync_q(self) -> SyncQueueView[T]:
        """A :class:`queue.Queue`-compatible view of this queue (same items)."""
        v = self._sync_view
        if v is None:
            v = self._sync_view = SyncQueueView(self)
        return v

    @property
    def async_q(self) -> AsyncQueueView[T]:
        """An :class:`asyncio.Queue`-compatible view of this queue (same items)."""
        v = self._async_view
        if v is None:
            v = self._async_view = AsyncQueueView(self)
        return v

    # ------------------------------------------------------------- internals
    # ``*_locked`` helpers run with the mutex held. Each either completes its
    # state change or undoes it before an exception leaves it.

    def _wake_everyone_locked(self) -> None:
        """After an unexpected exception: wake every waiter so each re-checks."""
        _notify_all(self._getters)
        _notify_all(self._putters)
        _notify_all(self._joiners)

    def _room_locked(self) -> int:
        m = self._maxsize
        return 1 << 62 if m <= 0 else m - len(self._items)

    def _push_locked(self, item: T) -> None:
        """Put one item and wake a getter; undone if an exception escapes."""
        self._unfinished += 1
        try:
            if self._head is None:
                self._heap_push(item)
            else:
                self._items.append(item)
            if self._getters:
                _notify(self._getters)
        except BaseException:
            self._remove_last_put(item)
            self._unfinished -= 1
            self._wake_everyone_locked()
            raise

    def _push_many_locked(self, batch: list[T], pos: int, end: int) -> None:
        """Put ``batch[pos:end]`` (all or nothing) and wake that many getters."""
        k = end - pos
        items = self._items
        n0 = len(items)
        self._unfinished += k
        try:
            if self._head is None:
                for x in islice(batch, pos, end):
                    self._heap_push(x)
            else:
                items.extend(batch if k == len(batch) else islice(batch, pos, end))
            getters = self._getters
            if getters:
                for _ in range(k):
                    if not getters or not _notify(getters):
                        break
        except BaseException:
            added = len(items) - n0
            for x in reversed(batch[pos : pos + added]):
                self._remove_last_put(x)
            self._unfinished -= k
            self._wake_everyone_locked()
            raise

    def _remove_last_put(self, item: Any) -> None:
        """Undo the put of ``item`` (the last one put, the mutex held since)."""
        items = self._items
        if self._head is None:
            for i in range(len(items) - 1, -1, -1):
                if items[i] is item:
                    del items[i]
                    heapq.heapify(items)
                    return
        elif items and items[-1] is item:
            del items[-1]

    def _heap_push(self, item: T) -> None:
        heap = self._items
        try:
            heapq.heappush(heap, item)
        except BaseException:
            # A comparison raised (or an interrupt): the item must not stay.
            for i in range(len(heap) - 1, -1, -1):
                if heap[i] is item:
                    del heap[i]
                    break
            heapq.heapify(heap)
            raise

    def _take_locked(self, n: int) -> list[T]:
        """Remove up to ``n`` items from the head (there is one) and wake putters.

        Nothing is removed if an exception escapes (``heappop`` runs the
        items' ``__lt__``, and an interrupt may land after any call).
        """
        items = self._items
        head = self._head
        out: list[T] = []
        n0 = len(items)
        x: Any = _WAIT
        try:
            if head is None:
                while items and len(out) < n:
                    x = items[0]
                    heapq.heappop(items)
                    out.append(x)
                    x = _WAIT
            elif n >= n0:
                out = list(items) if head == 0 else list(reversed(items))
                items.clear()
            elif head == 0:
                out = list(islice(items, n))
                pop = items.popleft
                for _ in range(n):
                    pop()
            else:
                out = list(islice(reversed(items), n))
                pop = items.pop
                for _ in range(n):
                    pop()
            putters = self._putters
            if putters:
                for _ in range(len(out)):
                    if not putters or not _notify(putters):
                        break
        except BaseException:
            # Give back what left the container (counted from the state: the
            # mutex is held), plus a popped heap item not yet in ``out``.
            if head is None:
                back = out[:]
                if x is not _WAIT and not (back and back[-1] is x):
                    back.append(x)
                items.extend(back)
                heapq.heapify(items)
            else:
                back = out[: n0 - len(items)]
                if head == 0:
                    items.extendleft(reversed(back))
                else:
                    items.extend(reversed(back))
            self._wake_everyone_locked()
            raise
        return out

    def _pass_on_locked(self, kind: int) -> None:
        """A notified waiter leaves without using its wake-up: give it to the next."""
        if kind == _GET and (self._items or self._closed):
            _notify(self._getters)
        elif kind == _PUT and (self._room_locked() > 0 or self._closed):
            _notify(self._putters)

    def _list_of(self, kind: int) -> deque[_Waiter]:
        return self._getters if kind == _GET else self._putters if kind == _PUT else self._joiners

    def _abandon(self, w: _Waiter | None, kind: int) -> None:
        """The waiting call leaves on an exception: unlist ``w`` or pass its wake-up on."""
        if w is None:
            return
        with self._lock:
            try:
                if w.listed:
                    _unlist(self._list_of(kind), w)
                if w.notified:
                    self._pass_on_locked(kind)
            except BaseException:
                self._wake_everyone_locked()
                raise

    def _block(
        self, kind: int, attempt: Callable[[bool], Any], timeout: float | None, front: bool = False
    ) -> Any:
        """Run ``attempt(expired)`` under the mutex until it returns a value
        (not ``_WAIT``), sleeping in line between tries (thread side)."""
        end = None if timeout is None else _monotonic() + timeout
        lst = self._list_of(kind)
        w: _ThreadWaiter | None = None
        while True:
            try:
                with self._lock:
                    if w is not None and w.listed:
                        _unlist(lst, w)
                    expired = end is not None and _monotonic() >= end
                    res = attempt(expired)
                    if res is not _WAIT:
                        break
                    w = _ThreadWaiter()
                    w.listed = True
                    if front:
                        lst.appendleft(w)
                    else:
                        lst.append(w)
                wait = -1.0 if end is None else min(max(end - _monotonic(), 0.0), _TIMEOUT_MAX)
                w.lock.acquire(True, wait)
            except BaseException:
                self._abandon(w, kind)
                raise
            front = True
        if isinstance(res, BaseException):
            raise res
        return res

    async def _ablock(
        self, kind: int, attempt: Callable[[bool], Any], timeout: float | None
    ) -> Any:
        """Coroutine version of :meth:`_block`: suspends, never blocks the loop."""
        loop = asyncio.get_running_loop()
        end = None if timeout is None else _monotonic() + timeout
        lst = self._list_of(kind)
        w: _AsyncWaiter | None = None
        front = False
        while True:
            timer = None
            try:
                with self._lock:
                    if w is not None and w.listed:
                        _unlist(lst, w)
                    expired = end is not None and _monotonic() >= end
                    res = attempt(expired)
                    if res is not _WAIT:
                        break
                    w = _AsyncWaiter(loop)
                    w.listed = True
                    if front:
                        lst.appendleft(w)
                    else:
                        lst.append(w)
                if end is not None:
                    timer = loop.call_later(max(end - _monotonic(), 0.0), _resolve, w.fut)
                await w.fut
            except BaseException:  # cancelled (or interrupted)
                self._abandon(w, kind)
                raise
            finally:
                if timer is not None:
                    timer.cancel()
            front = True
        if isinstance(res, BaseException):
            raise res
        return res

    def _get_attempt(
        self, max_items: int, empty: type[Exception], name: str
    ) -> Callable[[bool], Any]:
        def attempt(expired: bool) -> Any:
            if self._items:
                return self._take_locked(max_items)
            if self._closed:
                return QueueClosed(f"{name}() on a shut-down and empty queue")
            if expired:
                return empty()
            return _WAIT

        return attempt

    def _put_attempt(self, item: T, full: type[Exception], name: str) -> Callable[[bool], Any]:
        def attempt(expired: bool) -> Any:
            if self._closed:
                return QueueClosed(f"{name}() on a shut-down queue")
            if self._room_locked() > 0:
                self._push_locked(item)
                return None
            if expired:
                return full()
            return _WAIT

        return attempt

    # -------------------------------------------------------------------- put

    def put(self, item: T, block: bool = True, timeout: float | None = None) -> None:
        """Put ``item``, waiting for room if the queue is full (as :meth:`queue.Queue.put`).

        Raises :class:`queue.Full` if no room appeared (``block=False``, or
        ``timeout`` expired) and :class:`QueueClosed` after :meth:`shutdown`.
        If it raises, the item was not put.
        """
        if block and timeout is not None:
            timeout = _check_timeout(timeout)
        # No ``raise`` under the mutex: on Python 3.10 a signal-handler exception
        # delivered as an exception unwinds into the ``with`` skips ``__exit__``.
        with self._lock:
            is_open = not self._closed
            if is_open:
                m = self._maxsize
                if m <= 0 or len(self._items) < m:
                    self._unfinished += 1
                    try:
                        if self._head is None:
                            self._heap_push(item)
                        else:
                            self._items.append(item)
                        if self._getters:
                            _notify(self._getters)
                    except BaseException:
                        self._remove_last_put(item)
                        self._unfinished -= 1
                        self._wake_everyone_locked()
                        raise
                    return
        if not is_open:
            raise QueueClosed("put() on a shut-down queue")
        if not block or timeout == 0:
            raise queue.Full
        self._block(_PUT, self._put_attempt(item, queue.Full, "put"), timeout)

    def put_nowait(self, item: T) -> None:
        """Put ``item`` if there is room now, else raise :class:`queue.Full`."""
        self.put(item, False)

    def put_many(self, items: Iterable[T], timeout: float | None = None) -> None:
        """Put every item of ``items``, in order, waiting for room as needed.

        The items that fit go in under one lock acquisition. If ``timeout``
        (seconds; ``0`` = do not wait) expires first, raises
        :class:`PartialPut`, whose ``count`` says how many went in (always a
        prefix of the batch). If the queue is shut down, raises
        :class:`QueueClosed` with ``count`` set the same way.
        """
        if timeout is not None:
            timeout = _check_timeout(timeout)
        batch = items if type(items) is list else list(items)  # no user code under the lock
        n = len(batch)
        with self._lock:
            closed = self._closed
            if closed:
                pos = 0
            else:
                m = self._maxsize
                pos = n if m <= 0 else min(n, max(m - len(self._items), 0))
                if pos:
                    self._push_many_locked(batch, 0, pos)
        if closed:
            raise QueueClosed("put_many() on a shut-down queue", count=0)
        if pos == n:
            return
        if timeout == 0:
            raise PartialPut(pos, batch[pos:])

        def attempt(expired: bool) -> Any:
            nonlocal pos
            if self._closed:
                return QueueClosed(
                    f"put_many() on a shut-down queue: {pos} of {n} items went in", count=pos
                )
            end = min(n, pos + max(self._room_locked(), 0))
            if end > pos:
                self._push_many_locked(batch, pos, end)
                pos = end
            if pos == n:
                return None
            if expired:
                return PartialPut(pos, batch[pos:])
            return _WAIT

        self._block(_PUT, attempt, timeout)

    # -------------------------------------------------------------------- get

    def get(self, block: bool = True, timeout: float | None = None) -> T:
        """Remove and return the next item, waiting for one if the queue is empty.

        Raises :class:`queue.Empty` if none arrived (``block=False``, or
        ``timeout`` expired) and :class:`QueueClosed` once the queue is shut
        down and empty. If it raises, no item was taken.
        """
        if block and timeout is not None:
            timeout = _check_timeout(timeout)
        with self._lock:
            items = self._items
            if items:
                head = self._head
                if head is None:
                    return self._take_locked(1)[0]
                item = items[head]
                del items[head]
                if self._putters:
                    try:
                        _notify(self._putters)
                    except BaseException:
                        if head == 0:
                            items.appendleft(item)
                        else:
                            items.append(item)
                        self._wake_everyone_locked()
                        raise
                return item  # type: ignore[no-any-return]
            closed = self._closed
        if closed:
            raise QueueClosed("get() on a shut-down and empty queue")
        if not block or timeout == 0:
            raise queue.Empty
        return self._block(_GET, self._get_attempt(1, queue.Empty, "get"), timeout)[0]  # type: ignore[no-any-return]

    def get_nowait(self) -> T:
        """Remove and return the next item if there is one, else raise :class:`queue.Empty`."""
        return self.get(False)

    def get_many(self, max_items: int, timeout: float | None = None) -> list[T]:
        """Remove and return up to ``max_items`` items, in queue order.

        Waits until at least one item is there (at most ``timeout`` seconds;
        ``0`` = do not wait, ``None`` = forever), then takes what is available
        up to ``max_items`` without waiting further. Raises
        :class:`queue.Empty` on timeout, :class:`QueueClosed` once shut down
        and empty, :class:`ValueError` if ``max_items < 1``.
        """
        if isinstance(max_items, bool) or not isinstance(max_items, int):
            raise TypeError(f"max_items must be an int, not {type(max_items).__name__}")
        if max_items < 1:
            raise ValueError("max_items must be >= 1")
        if timeout is not None:
            timeout = _check_timeout(timeout)
        with self._lock:
            if self._items:
                return self._take_locked(max_items)
            closed = self._closed
        if closed:
            raise QueueClosed("get_many() on a shut-down and empty queue")
        if timeout == 0:
            raise queue.Empty
        return self._block(  # type: ignore[no-any-return]
            _GET, self._get_attempt(max_items, queue.Empty, "get_many"), timeout
        )

    # ---------------------------------------------------------- tasks / join

    def task_done(self) -> None:
        """Mark one item taken earlier as processed (as :meth:`queue.Queue.task_done`).

        Raises :class:`ValueError` if called more times than items were put.
        When the count of unfinished tasks reaches zero, :meth:`join` returns.
        """
        with self._lock:
            u = self._unfinished
            if u > 0:
                self._unfinished = u - 1
                if u == 1 and self._joiners:
                    try:
                        _notify_all(self._joiners)
                    except BaseException:
                        self._wake_everyone_locked()
                        raise
        if u <= 0:
            raise ValueError("task_done() called too many times")

    def _join_attempt(self, expired: bool) -> Any:
        if self._unfinished == 0:
            return True
        if expired:
            return False
        return _WAIT

    def join(self, timeout: float | None = None) -> bool:
        """Block until every item put has been marked done with :meth:`task_done`.

        Returns True then, or False if ``timeout`` (seconds; ``None`` =
        forever) expired first. :class:`queue.Queue.join` takes no timeout and
        returns None; code that ignores the result is unaffected.
        """
        if timeout is not None:
            timeout = _check_timeout(timeout)
        with self._lock:
            if self._unfinished == 0:
                return True
            if timeout == 0:
                return False
        return self._block(_JOIN, self._join_attempt, timeout)  # type: ignore[no-any-return]

    async def ajoin(self, timeout: float | None = None) -> bool:
        """Coroutine version of :meth:`join` (the loop keeps running)."""
        if timeout is not None:
            timeout = _check_timeout(timeout)
        return await self._ablock(_JOIN, self._join_attempt, timeout)  # type: ignore[no-any-return]

    # --------------------------------------------------------------- shutdown

    def shutdown(self, immediate: bool = False) -> None:
        """Shut the queue down, as :meth:`queue.Queue.shutdown` (Python 3.13) does.

        Afterwards every put raises :class:`QueueClosed` (a
        :class:`queue.Shutdown`); gets return the items still queued and then
        raise it. With ``immediate=True`` the queued items are discarded
        first, and the count of unfinished tasks drops by their number (so
        :meth:`join` returns once the items already taken are done). Every
        blocked putter and getter, threads and coroutines, is woken at once.
        Calling it again is allowed (``immediate=True`` then still drains).
        """
        with self._lock:
            try:
                self._closed = True
                if immediate:
                    items = self._items
                    n = len(items)
                    self._unfinished = max(0, self._unfinished - n)
                    items.clear()
                    if self._unfinished == 0:
                        _notify_all(self._joiners)
                _notify_all(self._getters)
                _notify_all(self._putters)
            except BaseException:
                self._wake_everyone_locked()
                raise

    def close(self) -> None:
        """Same as ``shutdown(immediate=False)``; idempotent.

        Afterwards every put raises :class:`QueueClosed`; gets return the items
        still queued and then raise :class:`QueueClosed`. Every blocked putter
        and getter (threads and coroutines) is woken at once and raises
        :class:`QueueClosed` (a putter blocked in ``put_many`` reports in
        ``count`` how many of its items went in).
        """
        self.shutdown(False)

    # -------------------------------------------------------------- iteration

    def __iter__(self) -> Iterator[T]:
        """Consume items with ``get()`` until the queue is shut down and drained."""
        get = self.get
        while True:
            try:
                yield get()
            except QueueClosed:
                return

    def __aiter__(self) -> AsyncIterator[T]:
        """Consume items with ``aget()`` until the queue is shut down and drained."""
        return self._aiter()

    async def _aiter(self) -> AsyncIterator[T]:
        while True:
            try:
                item = await self.aget()
            except QueueClosed:
                return
            yield item

    # ---------------------------------------------------------------- asyncio

    async def aget(self, timeout: float | None = None) -> T:
        """Coroutine version of :meth:`get`: suspend (not block) until an item comes.

        Usable from any event loop in any thread; the loop keeps running while
        this waits. ``timeout`` (seconds, ``None`` = forever) raises
        :class:`queue.Empty`. A cancelled ``aget`` has taken no item.
        """
        if timeout is not None:
            timeout = _check_timeout(timeout)
        return await self._aget(timeout, queue.Empty)

    async def _aget(self, timeout: float | None, empty: type[Exception]) -> T:
        attempt = self._get_attempt(1, empty, "get")
        with self._lock:
            res = attempt(timeout == 0)
        if res is _WAIT:
            res = await self._ablock(_GET, attempt, timeout)
        elif isinstance(res, BaseException):
            raise res
        return res[0]  # type: ignore[no-any-return]

    async def aput(self, item: T, timeout: float | None = None) -> None:
        """Coroutine version of :meth:`put`: suspend (not block) until there is room.

        Usable from any event loop in any thread. ``timeout`` (seconds,
        ``None`` = forever) raises :class:`queue.Full`. A cancelled ``aput``
        has not put its item.
        """
        if timeout is not None:
            timeout = _check_timeout(timeout)
        await self._aput(item, timeout, queue.Full)

    async def _aput(self, item: T, timeout: float | None, full: type[Exception]) -> None:
        attempt = self._put_attempt(item, full, "put")
        with self._lock:
            res = attempt(timeout == 0)
        if res is _WAIT:
            await self._ablock(_PUT, attempt, timeout)
        elif isinstance(res, BaseException):
            raise res


class ConcurrentLifoQueue(ConcurrentQueue[T]):
    """An MPMC LIFO queue (last in, first out) with the API of :class:`ConcurrentQueue`.

    **Thread safety.** As :class:`ConcurrentQueue` (same machinery, views,
    shutdown, batches and asyncio support); the drop-in for
    :class:`queue.LifoQueue`.

    **Atomic operations.** As :class:`ConcurrentQueue`; ``get`` returns the
    most recently put item; ``get_many(k)`` returns the k newest items, newest
    first (what k calls of ``get`` would return).

    **Iteration.** Consuming, newest item first, until shut down and drained.

    **Blocking and timeouts.** As :class:`ConcurrentQueue`.

    **Complexity.** As :class:`ConcurrentQueue`: ``put``/``get`` O(1).
    """

    __slots__ = ()
    _head = -1


class ConcurrentPriorityQueue(ConcurrentQueue[T]):
    """An MPMC priority queue (lowest item first) with the API of :class:`ConcurrentQueue`.

    **Thread safety.** As :class:`ConcurrentQueue` (same machinery, views,
    shutdown, batches and asyncio support); the drop-in for
    :class:`queue.PriorityQueue`. Items are compared with ``<`` under the
    queue's mutex (as in :class:`queue.PriorityQueue`): their ``__lt__``
    must not use the queue. An item that cannot be compared raises
    :class:`TypeError` from ``put`` and is not put.

    **Atomic operations.** As :class:`ConcurrentQueue`; ``get`` returns the
    smallest item (``heapq`` order; use ``(priority, seq, item)`` tuples for
    FIFO among equal priorities); ``get_many(k)`` returns the k smallest, in
    order.

    **Iteration.** Consuming, smallest item first, until shut down and
    drained.

    **Blocking and timeouts.** As :class:`ConcurrentQueue`.

    **Complexity.** ``put``/``get`` O(log n); ``put_many``/``get_many`` O(k
    log n).
    """

    __slots__ = ()
    _head = None

    def _new_items(self) -> Any:
        return []


# ---------------------------------------------------------------------- views


class SyncQueueView(Generic[T]):
    """The :class:`queue.Queue` interface of a :class:`ConcurrentQueue` (``q.sync_q``).

    **Thread safety.** Every method may be called from any thread; the view
    and the queue (and its ``async_q``) share the same items, counters and
    shutdown state.

    **Atomic operations.** As the queue's methods of the same names.

    **Iteration.** Not iterable (as :class:`queue.Queue`); iterate the queue.

    **Blocking and timeouts.** ``put``/``get``/``join`` exactly as
    :class:`queue.Queue` (``join`` also accepts a ``timeout``).

    **Complexity.** One extra call per method over the queue.
    """

    __slots__ = ("_q",)

    def __init__(self, q: ConcurrentQueue[T]) -> None:
        self._q = q

    @property
    def wrapped(self) -> ConcurrentQueue[T]:
        """The queue this is a view of."""
        return self._q

    @property
    def maxsize(self) -> int:
        """The queue's bound (assignable)."""
        return self._q.maxsize

    @maxsize.setter
    def maxsize(self, value: int) -> None:
        self._q.maxsize = value

    @property
    def unfinished_tasks(self) -> int:
        """Items put and not yet marked done."""
        return self._q.unfinished_tasks

    @property
    def is_shutdown(self) -> bool:
        """True once the queue was shut down."""
        return self._q.is_shutdown

    def qsize(self) -> int:
        """Number of items now (a snapshot)."""
        return self._q.qsize()

    def empty(self) -> bool:
        """True if no item is there now (a snapshot)."""
        return self._q.empty()

    def full(self) -> bool:
        """True if a put would block now (a snapshot)."""
        return self._q.full()

    def put(self, item: T, block: bool = True, timeout: float | None = None) -> None:
        """:meth:`queue.Queue.put`."""
        self._q.put(item, block, timeout)

    def put_nowait(self, item: T) -> None:
        """:meth:`queue.Queue.put_nowait`."""
        self._q.put(item, False)

    def get(self, block: bool = True, timeout: float | None = None) -> T:
        """:meth:`queue.Queue.get`."""
        return self._q.get(block, timeout)

    def get_nowait(self) -> T:
        """:meth:`queue.Queue.get_nowait`."""
        return self._q.get(False)

    def task_done(self) -> None:
        """:meth:`queue.Queue.task_done`."""
        self._q.task_done()

    def join(self, timeout: float | None = None) -> bool:
        """:meth:`queue.Queue.join` (with an optional timeout; False when it expires)."""
        return self._q.join(timeout)

    def shutdown(self, immediate: bool = False) -> None:
        """:meth:`queue.Queue.shutdown`."""
        self._q.shutdown(immediate)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._q!r}>"

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError(f"cannot pickle {type(self).__name__!r} object")

    def __copy__(self) -> NoReturn:
        raise TypeError(f"cannot copy {type(self).__name__!r} object")

    def __deepcopy__(self, memo: Any) -> NoReturn:
        raise TypeError(f"cannot deepcopy {type(self).__name__!r} object")


class AsyncQueueView(Generic[T]):
    """The :class:`asyncio.Queue` interface of a :class:`ConcurrentQueue` (``q.async_q``).

    **Thread safety.** Usable from any event loop in any thread at once (and
    alongside threads using the queue or ``sync_q``); waiting coroutines
    suspend, the loop is never blocked and no thread is created per waiter.

    **Atomic operations.** As the queue's ``aput``/``aget``/``put_nowait``/
    ``get_nowait``/``task_done``/``shutdown``.

    **Iteration.** Not iterable (as :class:`asyncio.Queue`); use
    ``async for item in q`` on the queue.

    **Blocking and timeouts.** ``get``/``put``/``join`` wait without a
    timeout, as in :class:`asyncio.Queue` (use ``asyncio.timeout``; a
    cancelled call has taken or put nothing). ``get_nowait``/``put_nowait``
    raise :class:`asyncio.QueueEmpty`/:class:`asyncio.QueueFull`; a shut-down
    queue raises :class:`QueueClosed`, an :class:`asyncio.QueueShutDown`.

    **Complexity.** As the queue's methods.
    """

    __slots__ = ("_q",)

    def __init__(self, q: ConcurrentQueue[T]) -> None:
        self._q = q

    @property
    def wrapped(self) -> ConcurrentQueue[T]:
        """The queue this is a view of."""
        return self._q

    @property
    def maxsize(self) -> int:
        """The queue's bound (read-only here, as in :class:`asyncio.Queue`)."""
        return self._q.maxsize

    def qsize(self) -> int:
        """Number of items now (a snapshot)."""
        return self._q.qsize()

    def empty(self) -> bool:
        """True if no item is there now (a snapshot)."""
        return self._q.empty()

    def full(self) -> bool:
        """True if a put would wait now (a snapshot)."""
        return self._q.full()

    async def put(self, item: T) -> None:
        """:meth:`asyncio.Queue.put`: wait for room, then put."""
        await self._q._aput(item, None, asyncio.QueueFull)

    def put_nowait(self, item: T) -> None:
        """:meth:`asyncio.Queue.put_nowait`: raises :class:`asyncio.QueueFull`."""
        try:
            self._q.put(item, False)
        except queue.Full:
            raise asyncio.QueueFull from None

    async def get(self) -> T:
        """:meth:`asyncio.Queue.get`: wait for an item, then take it."""
        return await self._q._aget(None, asyncio.QueueEmpty)

    def get_nowait(self) -> T:
        """:meth:`asyncio.Queue.get_nowait`: raises :class:`asyncio.QueueEmpty`."""
        try:
            return self._q.get(False)
        except queue.Empty:
            raise asyncio.QueueEmpty from None

    def task_done(self) -> None:
        """:meth:`asyncio.Queue.task_done`."""
        self._q.task_done()

    async def join(self) -> None:
        """:meth:`asyncio.Queue.join`: wait until every item put was marked done."""
        await self._q.ajoin()

    def shutdown(self, immediate: bool = False) -> None:
        """:meth:`asyncio.Queue.shutdown`."""
        self._q.shutdown(immediate)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._q!r}>"

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError(f"cannot pickle {type(self).__name__!r} object")

    def __copy__(self) -> NoReturn:
        raise TypeError(f"cannot copy {type(self).__name__!r} object")

    def __deepcopy__(self, memo: Any) -> NoReturn:
        raise TypeError(f"cannot deepcopy {type(self).__name__!r} object")
