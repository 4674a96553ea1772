"""ConcurrentQueue: an MPMC FIFO queue for threads and event loops alike.

The queue joins free-threaded worker threads and asyncio code: the blocking
methods (``put``/``get``/``put_many``/``get_many``) are for threads, the
``aput``/``aget`` coroutines for event loops (any loop, in any thread). A
``close()`` ends the stream for everybody at once.

Design (why it is faster than :class:`queue.Queue`): one mutex guards a
``collections.deque`` of items and two FIFO lists of *waiters*. There are no
``Condition`` objects and nothing is notified unless somebody is actually
waiting. A waiting thread owns a private lock that it blocks on; a waiting
coroutine owns a future. A ``put`` that finds a waiting getter hands the item
*directly* to it (the getter returns without touching the mutex again), and a
``get`` that frees room moves a waiting putter's item into the queue on its
behalf. Waking a coroutine goes through ``loop.call_soon_threadsafe``: no
thread per waiter, and the loop is never blocked for longer than the mutex is
held (a few list operations).
"""

from __future__ import annotations

import asyncio
import queue
import sys
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from itertools import islice
from typing import Any, Generic, TypeVar

from conctools._internal.timeouts import check_timeout, lock_timeout

__all__ = ["ConcurrentQueue", "PartialPut", "QueueClosed"]

T = TypeVar("T")

_CLOSED_DOC = """Raised by a closed :class:`ConcurrentQueue`.

Every ``put`` after :meth:`ConcurrentQueue.close` raises it; a ``get`` raises
it once the queue is closed *and* drained. On Python 3.13+ it subclasses
:class:`queue.ShutDown`, so code written for ``queue.Queue.shutdown()`` catches
it unchanged.

``count`` is set by :meth:`ConcurrentQueue.put_many` to the number of items
that went in before the queue was closed (``None`` otherwise).
"""

if sys.version_info >= (3, 13):  # pragma: no cover - depends on the interpreter

    class QueueClosed(queue.ShutDown):
        __doc__ = _CLOSED_DOC

        def __init__(self, *args: object, count: int | None = None) -> None:
            super().__init__(*args)
            self.count = count

else:  # pragma: no cover - depends on the interpreter

    class QueueClosed(Exception):
        __doc__ = _CLOSED_DOC

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


# Waiter states. A waiter's state only changes under the queue's mutex; the
# waiter reads it after being woken (its private lock / future give the
# happens-before edge).
_WAITING = 0
_DONE = 1  # getter: ``item`` holds its item; thread putter: all items went in
_CLOSED = 2  # woken by close()
_GRANTED = 3  # coroutine putter: a slot is reserved for it (counted in ``_held``)
_TAKEN = 4  # coroutine waiter: it consumed (or gave back) what it was given


def _check_timeout(timeout: float | None) -> float | None:
    """Validate a timeout; one too large to sleep on means "forever" (``None``)."""
    t = check_timeout(timeout)
    return None if t is not None and t > _TIMEOUT_MAX else t


_TIMEOUT_MAX = threading.TIMEOUT_MAX


class _Waiter:
    """What the two waiter kinds share. ``state`` changes only under the mutex."""

    __slots__ = ("batch", "held", "item", "pos", "state")
    is_async = False

    def __init__(self, item: Any, batch: list[Any] | None) -> None:
        self.state = _WAITING
        self.item = item
        # Thread putters from put_many: the batch and how much of it went in.
        self.batch = batch
        self.pos = 0
        # Coroutine getters of a bounded queue: the item handed over still holds a slot.
        self.held = False

    def wake(self) -> bool:
        """Let the waiter run; False if it never will (its event loop is closed)."""
        raise NotImplementedError


class _ThreadWaiter(_Waiter):
    """A blocked thread: it sleeps on ``lock`` (acquired at creation)."""

    __slots__ = ("lock",)

    def __init__(self, item: Any = None, batch: list[Any] | None = None) -> None:
        super().__init__(item, batch)
        lock = threading.Lock()
        lock.acquire()
        self.lock = lock

    def wake(self) -> bool:
        self.lock.release()
        return True


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class _AsyncWaiter(_Waiter):
    """A suspended coroutine: it awaits ``fut`` on ``loop``."""

    __slots__ = ("fut", "loop")
    is_async = True

    def __init__(self, loop: asyncio.AbstractEventLoop, item: Any = None) -> None:
        super().__init__(item, None)
        self.loop = loop
        self.fut: asyncio.Future[None] = loop.create_future()

    def wake(self) -> bool:
        loop = self.loop
        try:
            if asyncio.events._get_running_loop() is loop:
                loop.call_soon(_resolve, self.fut)
            else:
                loop.call_soon_threadsafe(_resolve, self.fut)
        except RuntimeError:  # loop closed
            return False
        return True


class ConcurrentQueue(Generic[T]):
    """An MPMC FIFO queue (``maxsize=0``: unbounded) with close, batches and asyncio support.

    **Thread safety.** Every method may be called from any number of threads
    and event loops at once (threads use ``put``/``get``/``put_many``/
    ``get_many``, coroutines ``aput``/``aget``; the ``queue.Queue`` names and
    exceptions are kept). One internal mutex guards the items and the
    waiter lists; it is held only for a few list operations and never while
    user code runs. Guarantees: FIFO (items leave in the order they were
    accepted); nothing is lost or duplicated; the items of one producer reach
    the consumers in the order it put them (a batch stays in order); the
    number of items in the queue never exceeds ``maxsize``.

    **Atomic operations.** ``put``, ``get``, ``put_nowait``, ``get_nowait``,
    ``aput``, ``aget`` and ``close`` are linearizable. ``get_many`` takes the
    items that are there as one atomic step (a contiguous run from the head);
    one that had to wait is handed the first item, then takes what is there. ``put_many``
    is atomic when the whole batch fits; otherwise it puts a prefix atomically
    and the rest as room appears, in order, and may interleave with other
    producers' items. ``qsize``, ``empty`` and ``full`` are snapshots.

    **Iteration.** ``for item in q`` (and ``async for item in q``) consumes:
    it is a loop of ``get()`` that ends when the queue is closed and drained.
    Several consumers may iterate at once; each item goes to exactly one.

    **Blocking and timeouts.** ``put`` blocks while the queue is full, ``get``
    while it is empty; both take ``block``/``timeout`` exactly like
    :class:`queue.Queue` (``timeout=None`` waits forever, a negative timeout
    raises :class:`ValueError`). ``put_many`` raises :class:`PartialPut` (a
    :class:`queue.Full`) with the count of items that went in when its timeout
    expires. ``close()`` wakes every blocked putter and getter, threads and
    coroutines, at once: puts then raise :class:`QueueClosed`, gets drain the
    remaining items and then raise :class:`QueueClosed`. A cancelled (or
    timed-out) ``aget``/``aput`` loses nothing: an item already handed to a
    cancelled getter goes back to the head of the queue (or to the next
    waiting getter), and a cancelled ``aput`` has not put its item. Waiters
    are served first come, first served.

    **Complexity.** ``put``/``get`` are O(1); ``put_many``/``get_many`` are
    O(k) for k items with a single lock acquisition; a timed-out or cancelled
    waiter costs O(number of waiters) to unregister. No thread or task is
    created per waiter.
    """

    __slots__ = (
        "__weakref__",
        "_closed",
        "_getters",
        "_held",
        "_items",
        "_lock",
        "_maxsize",
        "_putters",
    )

    def __init__(self, maxsize: int = 0) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int):
            raise TypeError(f"maxsize must be an int, not {type(maxsize).__name__}")
        if maxsize < 0:
            raise ValueError("maxsize must be >= 0 (0 means unbounded)")
        self._maxsize = maxsize
        self._lock = threading.Lock()
        self._items: deque[T] = deque()
        self._getters: deque[_Waiter] = deque()
        self._putters: deque[_Waiter] = deque()
        self._closed = False
        # Slots reserved outside the deque (bounded queues only): granted to a
        # coroutine putter that has not run yet, or items handed to a
        # coroutine getter that may still give them back if cancelled.
        self._held = 0

    # ------------------------------------------------------------------ state

    @property
    def maxsize(self) -> int:
        """The bound given at construction (0: unbounded)."""
        return self._maxsize

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._closed

    def qsize(self) -> int:
        """Number of items in the queue now (a snapshot)."""
        return len(self._items)

    def empty(self) -> bool:
        """True if the queue holds no item now (a snapshot)."""
        return not self._items

    def full(self) -> bool:
        """True if a ``put`` would block now (a snapshot; False when unbounded)."""
        m = self._maxsize
        return m > 0 and len(self._items) + self._held >= m

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<{type(self).__name__} {state} qsize={len(self._items)} maxsize={self._maxsize} "
            f"getters={len(self._getters)} putters={len(self._putters)}>"
        )

    # --------------------------------------------------------------- internals
    # Every ``_..._locked`` helper runs with the mutex held and returns the
    # waiters to wake once it is released.

    def _handoff_locked(self, item: Any, woken: list[_Waiter]) -> None:
        """Give ``item`` to the first waiting getter (caller checked there is one)."""
        w = self._getters.popleft()
        w.item = item
        w.state = _DONE
        if w.is_async and self._maxsize > 0:
            # The coroutine may be cancelled and give the item back: keep its slot.
            w.held = True
            self._held += 1
        woken.append(w)

    def _refill_locked(self, woken: list[_Waiter]) -> None:
        """Move waiting putters' items in while there is room (or a getter waits)."""
        putters = self._putters
        items = self._items
        getters = self._getters
        maxsize = self._maxsize
        while putters:
            w = putters[0]
            if getters:
                if w.is_async:
                    # A granted coroutine puts its item itself; reserve a slot.
                    if len(items) + self._held >= maxsize:
                        return
                    putters.popleft()
                    w.state = _GRANTED
                    self._held += 1
                    woken.append(w)
                    continue
                batch = w.batch
                if batch is None:
                    self._handoff_locked(w.item, woken)
                    w.item = None
                    done = True
                else:
                    self._handoff_locked(batch[w.pos], woken)
                    w.pos += 1
                    done = w.pos == len(batch)
            else:
                room = maxsize - len(items) - self._held
                if room <= 0:
                    return
                if w.is_async:
                    putters.popleft()
                    w.state = _GRANTED
                    self._held += 1
                    woken.append(w)
                    continue
                batch = w.batch
                if batch is None:
                    items.append(w.item)
                    w.item = None
                    done = True
                else:
                    pos = w.pos
                    end = min(len(batch), pos + room)
                    items.extend(islice(batch, pos, end))
                    w.pos = end
                    done = end == len(batch)
            if done:
                putters.popleft()
                w.state = _DONE
                woken.append(w)

    def _return_item_locked(self, w: _Waiter, woken: list[_Waiter]) -> None:
        """A coroutine getter that was handed an item will not take it: put it back."""
        item = w.item
        w.item = None
        w.state = _TAKEN
        if w.held:
            w.held = False
            self._held -= 1
        if self._getters:
            self._handoff_locked(item, woken)
        else:
            self._items.appendleft(item)
        if self._putters:
            self._refill_locked(woken)

    def _wake_all(self, waiters: list[_Waiter]) -> None:
        """Wake ``waiters``; undo what was given to coroutines whose loop is closed."""
        dead = [w for w in waiters if not w.wake()]
        while dead:
            woken: list[_Waiter] = []
            with self._lock:
                for w in dead:
                    if w.state == _DONE:
                        self._return_item_locked(w, woken)
                    elif w.state == _GRANTED:
                        w.state = _CLOSED
                        self._held -= 1
                        if self._putters:
                            self._refill_locked(woken)
            dead = [w for w in woken if not w.wake()]

    def _get_nowait_locked(self, woken: list[_Waiter]) -> T:
        """Pop the head item (caller checked there is one) and let a putter in."""
        item = self._items.popleft()
        if self._putters:
            self._refill_locked(woken)
        return item

    def _take_locked(self, max_items: int, woken: list[_Waiter]) -> list[T]:
        items = self._items
        if len(items) <= max_items:
            out = list(items)
            items.clear()
        else:
            pop = items.popleft
            out = [pop() for _ in range(max_items)]
        if self._putters:
            self._refill_locked(woken)
        return out

    # -------------------------------------------------------------------- put

    def put(self, item: T, block: bool = True, timeout: float | None = None) -> None:
        """Put ``item`` at the tail, waiting for room if the queue is bounded and full.

        Raises :class:`queue.Full` if no room appeared (``block=False``, or
        ``timeout`` expired) and :class:`QueueClosed` if the queue is (or gets)
        closed.
        """
        if timeout is not None and block:
            timeout = _check_timeout(timeout)
        with self._lock:
            if self._closed:
                raise QueueClosed("put() on a closed queue")
            if not self._getters:
                m = self._maxsize
                if m <= 0 or len(self._items) + self._held < m:
                    self._items.append(item)
                    return
                if not block or timeout == 0:
                    raise queue.Full
                w = _ThreadWaiter(item)
                self._putters.append(w)
                woken: list[_Waiter] | None = None
            else:
                woken = []
                self._handoff_locked(item, woken)
        if woken is not None:
            self._wake_all(woken)
            return
        try:
            ok = w.lock.acquire(True, lock_timeout(timeout))
        except BaseException:  # KeyboardInterrupt while waiting
            with self._lock:
                if w.state == _WAITING:
                    self._putters.remove(w)
            raise
        if not ok:
            with self._lock:
                if w.state == _WAITING:
                    self._putters.remove(w)
                    raise queue.Full
        if w.state == _CLOSED:
            raise QueueClosed("queue closed while put() was waiting")

    def put_nowait(self, item: T) -> None:
        """Put ``item`` if there is room now, else raise :class:`queue.Full`."""
        self.put(item, False)

    def put_many(self, items: Iterable[T], timeout: float | None = None) -> None:
        """Put every item of ``items``, in order, waiting for room as needed.

        The items that fit go in under one lock acquisition. If ``timeout``
        (seconds; ``0`` = do not wait) expires first, raises
        :class:`PartialPut`, whose ``count`` says how many went in (always a
        prefix of the batch). If the queue is closed, raises
        :class:`QueueClosed` with ``count`` set the same way.
        """
        if timeout is not None:
            timeout = _check_timeout(timeout)
        batch = items if type(items) is list else list(items)  # no user code under the lock
        n = len(batch)
        woken: list[_Waiter] = []
        with self._lock:
            if self._closed:
                raise QueueClosed("put_many() on a closed queue", count=0)
            # The atomic step accepts at most the room there is, counting the
            # items handed straight to waiting getters: sequentially, the batch
            # prefix goes in and those getters take from the head right after.
            m = self._maxsize
            q = self._items
            limit = n if m <= 0 else min(n, max(0, m - len(q) - self._held))
            pos = 0
            getters = self._getters
            while getters and pos < limit:
                self._handoff_locked(batch[pos], woken)
                pos += 1
            if pos < limit:
                q.extend(batch if pos == 0 and limit == n else islice(batch, pos, limit))
                pos = limit
            waiter = None
            if pos < n and timeout != 0:
                # The rest goes in as room appears (possibly at once, if the
                # head moved to waiting getters), in order, behind earlier putters.
                waiter = _ThreadWaiter(batch=batch)
                waiter.pos = pos
                self._putters.append(waiter)
                self._refill_locked(woken)
        if woken:
            self._wake_all(woken)
        if waiter is None:
            if pos < n:
                raise PartialPut(pos, batch[pos:])
            return
        try:
            ok = waiter.lock.acquire(True, lock_timeout(timeout))
        except BaseException:
            with self._lock:
                if waiter.state == _WAITING:
                    self._putters.remove(waiter)
            raise
        if not ok:
            with self._lock:
                if waiter.state == _WAITING:
                    self._putters.remove(waiter)
                    raise PartialPut(waiter.pos, batch[waiter.pos :])
        if waiter.state == _CLOSED:
            raise QueueClosed(
                f"queue closed during put_many(): {waiter.pos} of {n} items went in",
                count=waiter.pos,
            )

    # -------------------------------------------------------------------- get

    def get(self, block: bool = True, timeout: float | None = None) -> T:
        """Remove and return the head item, waiting for one if the queue is empty.

        Raises :class:`queue.Empty` if none arrived (``block=False``, or
        ``timeout`` expired) and :class:`QueueClosed` once the queue is closed
        and drained.
        """
        if timeout is not None and block:
            timeout = _check_timeout(timeout)
        with self._lock:
            if self._items:
                item = self._items.popleft()
                if not self._putters:
                    return item
                woken: list[_Waiter] = []
                self._refill_locked(woken)
                w = None
            else:
                if self._closed:
                    raise QueueClosed("get() on a closed and drained queue")
                if not block or timeout == 0:
                    raise queue.Empty
                w = _ThreadWaiter()
                self._getters.append(w)
        if w is None:
            if woken:
                self._wake_all(woken)
            return item
        return self._wait_getter(w, timeout)  # type: ignore[no-any-return]

    def _wait_getter(self, w: _ThreadWaiter, timeout: float | None) -> Any:
        """Sleep until ``w`` is handed an item (``w`` is registered; mutex free)."""
        try:
            ok = w.lock.acquire(True, lock_timeout(timeout))
        except BaseException:  # KeyboardInterrupt while waiting: give the item back
            woken: list[_Waiter] = []
            with self._lock:
                if w.state == _WAITING:
                    self._getters.remove(w)
                elif w.state == _DONE:
                    item = w.item
                    w.item = None
                    if self._getters:
                        self._handoff_locked(item, woken)
                    else:
                        self._items.appendleft(item)
            self._wake_all(woken)
            raise
        if not ok:
            with self._lock:
                if w.state == _WAITING:
                    self._getters.remove(w)
                    raise queue.Empty
        if w.state == _CLOSED:
            raise QueueClosed("queue closed while get() was waiting")
        item = w.item
        w.item = None
        return item

    def get_nowait(self) -> T:
        """Remove and return the head item if there is one, else raise :class:`queue.Empty`."""
        return self.get(False)

    def get_many(self, max_items: int, timeout: float | None = None) -> list[T]:
        """Remove and return up to ``max_items`` items from the head, in order.

        Waits until at least one item is there (at most ``timeout`` seconds;
        ``0`` = do not wait, ``None`` = forever), then takes what is available
        up to ``max_items`` without waiting further. Raises
        :class:`queue.Empty` on timeout, :class:`QueueClosed` once closed and
        drained, :class:`ValueError` if ``max_items < 1``.
        """
        if isinstance(max_items, bool) or not isinstance(max_items, int):
            raise TypeError(f"max_items must be an int, not {type(max_items).__name__}")
        if max_items < 1:
            raise ValueError("max_items must be >= 1")
        if timeout is not None:
            timeout = _check_timeout(timeout)
        woken: list[_Waiter] = []
        with self._lock:
            if self._items:
                out = self._take_locked(max_items, woken)
            else:
                if self._closed:
                    raise QueueClosed("get_many() on a closed and drained queue")
                if timeout == 0:
                    raise queue.Empty
                w = _ThreadWaiter()
                self._getters.append(w)
                out = []
        if out:
            if woken:
                self._wake_all(woken)
            return out
        first = self._wait_getter(w, timeout)
        if max_items == 1 or not self._items:
            return [first]
        with self._lock:
            more = self._take_locked(max_items - 1, woken) if self._items else []
        if woken:
            self._wake_all(woken)
        more.insert(0, first)
        return more

    # ------------------------------------------------------------------ close

    def close(self) -> None:
        """Close the queue; idempotent.

        Afterwards every put raises :class:`QueueClosed`; gets return the items
        still queued and then raise :class:`QueueClosed`. Every blocked putter
        and getter (threads and coroutines) is woken at once and raises
        :class:`QueueClosed` (a putter blocked in ``put_many`` reports in
        ``count`` how many of its items went in).
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            waiters = [*self._getters, *self._putters]
            self._getters.clear()
            self._putters.clear()
            for w in waiters:
                w.state = _CLOSED
        self._wake_all(waiters)

    # -------------------------------------------------------------- iteration

    def __iter__(self) -> Iterator[T]:
        """Consume items with ``get()`` until the queue is closed and drained."""
        get = self.get
        while True:
            try:
                yield get()
            except QueueClosed:
                return

    def __aiter__(self) -> AsyncIterator[T]:
        """Consume items with ``aget()`` until the queue is closed and drained."""
        return self._aiter()

    async def _aiter(self) -> AsyncIterator[T]:
        while True:
            try:
                item = await self.aget()
            except QueueClosed:
                return
            yield item

    # ---------------------------------------------------------------- asyncio

    @staticmethod
    def _arm_timer(w: _AsyncWaiter, timeout: float | None) -> asyncio.TimerHandle | None:
        if timeout is None:
            return None
        return w.loop.call_later(timeout, _resolve, w.fut)

    async def aget(self, timeout: float | None = None) -> T:
        """Coroutine version of :meth:`get`: suspend (not block) until an item comes.

        Usable from any event loop in any thread; the loop keeps running while
        this waits. ``timeout`` (seconds, ``None`` = forever) raises
        :class:`queue.Empty`. If the waiting task is cancelled, no item is
        lost: one already handed to it goes back to the head of the queue.
        """
        if timeout is not None:
            timeout = _check_timeout(timeout)
        woken: list[_Waiter] = []
        with self._lock:
            if self._items:
                item = self._get_nowait_locked(woken)
                w = None
            else:
                if self._closed:
                    raise QueueClosed("aget() on a closed and drained queue")
                if timeout == 0:
                    raise queue.Empty
                w = _AsyncWaiter(asyncio.get_running_loop())
                self._getters.append(w)
        if w is None:
            if woken:
                self._wake_all(woken)
            return item
        timer = self._arm_timer(w, timeout)
        try:
            await w.fut
        except BaseException:  # cancelled: unregister, or give the item back
            with self._lock:
                if w.state == _WAITING:
                    self._getters.remove(w)
                elif w.state == _DONE:
                    self._return_item_locked(w, woken)
            self._wake_all(woken)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if timer is not None or w.held:
            # Woken by our timer, or holding a slot: settle under the mutex
            # (a waker whose wake-up failed may otherwise reclaim the item).
            with self._lock:
                state = w.state
                if state == _WAITING:  # the timer fired first
                    self._getters.remove(w)
                    raise queue.Empty
                if state == _DONE:
                    w.state = _TAKEN
                if w.held:
                    w.held = False
                    self._held -= 1
                    if self._putters:
                        self._refill_locked(woken)
            if woken:
                self._wake_all(woken)
        if w.state == _CLOSED:
            raise QueueClosed("queue closed while aget() was waiting")
        item = w.item
        w.item = None
        return item

    async def aput(self, item: T, timeout: float | None = None) -> None:
        """Coroutine version of :meth:`put`: suspend (not block) until there is room.

        Usable from any event loop in any thread. ``timeout`` (seconds,
        ``None`` = forever) raises :class:`queue.Full`. If the waiting task is
        cancelled, the item has not been put.
        """
        if timeout is not None:
            timeout = _check_timeout(timeout)
        woken: list[_Waiter] = []
        with self._lock:
            if self._closed:
                raise QueueClosed("aput() on a closed queue")
            if self._getters:
                self._handoff_locked(item, woken)
                w = None
            else:
                m = self._maxsize
                if m <= 0 or len(self._items) + self._held < m:
                    self._items.append(item)
                    return
                if timeout == 0:
                    raise queue.Full
                w = _AsyncWaiter(asyncio.get_running_loop())
                self._putters.append(w)
        if w is None:
            self._wake_all(woken)
            return
        timer = self._arm_timer(w, timeout)
        try:
            await w.fut
        except BaseException:  # cancelled: unregister, or release our slot
            with self._lock:
                if w.state == _WAITING:
                    self._putters.remove(w)
                elif w.state == _GRANTED:
                    w.state = _CLOSED
                    self._held -= 1
                    if self._putters:
                        self._refill_locked(woken)
            self._wake_all(woken)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        with self._lock:
            state = w.state
            if state == _WAITING:  # the timer fired first
                self._putters.remove(w)
                raise queue.Full
            if state != _GRANTED:
                raise QueueClosed("queue closed while aput() was waiting")
            # A slot is reserved for us.
            w.state = _TAKEN
            self._held -= 1
            if self._closed:
                raise QueueClosed("queue closed before aput() could complete")
            if self._getters:
                self._handoff_locked(item, woken)
            else:
                self._items.append(item)
            if self._putters:
                self._refill_locked(woken)
        if woken:
            self._wake_all(woken)
