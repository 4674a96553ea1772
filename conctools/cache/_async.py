"""Asynchronous single-flight loading: ``ConcurrentCache.aget_or_load`` and async ``@cached``.

An asynchronous load is a flight (:class:`_ALoad`, a ``_Load``) registered in
the same per-stripe ``loading`` dict as the synchronous ones, so synchronous
and asynchronous callers of one key share one load whichever kind started it.

* The loader of an asynchronous flight runs in a task of its own, created on
  the loop of the call that started the load: cancelling any caller
  (including the one that started it) never cancels the load.  The task is
  not referenced by the cache (only weakly, for the recursion check): the
  loop's own references keep it running, and if that loop is closed without
  cancelling it, the task's finalization (when it is garbage collected)
  completes the flight.
* A coroutine waits on a private future through an :class:`_AWaiter`, which
  looks to the flight's completion like the private lock a thread waiter
  holds (``locked()``/``release()``): the completion code of either kind of
  flight wakes both kinds, and ``release()`` wakes the coroutine with
  ``call_soon_threadsafe`` on its own loop, so a waiter on another loop (in
  another thread) is woken safely.  A cancelled waiter unlists itself.
* Every flight is completed (value, error, or neither: its waiters start
  over) and unregistered by the task's ``finally`` block, and by the
  starting call if the task was never created.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .._internal.sentinel import MISSING
from .core import _MISS, _Load, _waiter_error

if TYPE_CHECKING:
    from .core import ConcurrentCache, _Stripe

__all__ = ["aload"]

# A waiter on another loop than its flight's checks this often whether the
# flight's loop was closed (its task can then never finish the flight).
_POLL = 0.5
_get_running_loop = asyncio._get_running_loop


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class _AWaiter:
    """A coroutine waiting for a flight, with a thread waiter's interface.

    ``locked()`` is true until ``release()``, which schedules the wakeup of the
    coroutine's future on its own loop (thread-safely when called from
    another thread).  A closed loop is ignored: nobody is left to wake."""

    __slots__ = ("fired", "fut", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, fut: asyncio.Future[None]) -> None:
        self.loop = loop
        self.fut = fut
        self.fired = False

    def locked(self) -> bool:
        return not self.fired

    def release(self) -> None:
        self.fired = True
        loop = self.loop
        try:
            if _get_running_loop() is loop:
                loop.call_soon(_wake, self.fut)
            else:
                loop.call_soon_threadsafe(_wake, self.fut)
        except RuntimeError:  # the waiter's loop is closed
            pass


class _ALoad(_Load):
    """A flight whose loader is awaited in a task on ``loop`` (``owner`` is
    the loop's thread: a blocking ``get_or_load`` of the key from that thread
    raises ``RuntimeError`` rather than block the loop that runs the load)."""

    __slots__ = ("interrupt", "loop", "task")

    def __init__(self, owner: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(owner)
        self.loop = loop
        self.task: weakref.ref[asyncio.Task[None]] | None = None
        # A BaseException (not an Exception, not a cancellation) from the
        # loader: raised in the call that started the load, as an interrupt
        # of a synchronous loader is raised in its own thread only.
        self.interrupt: BaseException | None = None


def _complete(
    stripe: _Stripe, key: Any, load: _Load, value: Any, error: BaseException | None
) -> None:
    """Complete ``load`` (idempotent), unregister it and wake its waiters; the
    same steps as the synchronous owners' inline completion, rerun if
    interrupted."""
    pending: BaseException | None = None
    while True:
        try:
            with stripe.lock:
                if not load.done:
                    if error is not None:
                        if isinstance(error, Exception):
                            load.error = error  # each waiter raises a copy (_waiter_error)
                        # (a cancellation or an interrupt: the waiters start over)
                        stripe.failures += 1
                    else:
                        load.value = value  # MISSING: the waiters start over
                    load.done = True
                loading = stripe.loading
                try:
                    if key in loading and loading[key] is load:
                        del loading[key]
                except Exception:  # a colliding key's __eq__: a done flight is inert
                    pass
                waiters = load.waiters[:]
            for w in waiters:
                if not w.locked():  # (no loop-ending "if": see core._after_record)
                    continue
                w.release()
            break
        except BaseException as exc:  # interrupted while completing: again
            pending = exc
    if pending is not None:
        raise pending


def _finished(stripe: _Stripe, key: Any, mine: _ALoad, task: asyncio.Task[None]) -> None:
    """The load's task is done: its flight is complete (a no-op if ``_run``
    completed it, as it does unless the task never reached its ``try``)."""
    _complete(stripe, key, mine, MISSING, None)


async def _run(
    cache: ConcurrentCache[Any, Any],
    key: Any,
    loader: Callable[[Any], Awaitable[Any]],
    mine: _ALoad,
    stripe: _Stripe,
    *,
    store: bool | Callable[[Any, Any], None],
) -> None:
    """The load's task: await the loader, cache its value, complete the flight.

    A loader exception is handed to the waiters, not raised here (nobody
    awaits this task); any other BaseException is handed to the call that
    started the load (the waiters start over), and a cancellation of this
    task, ``KeyboardInterrupt`` and ``SystemExit`` propagate as in any task."""
    value: Any = MISSING
    error: BaseException | None = None
    try:
        if mine.done:  # the starting call was interrupted after creating us
            return
        try:
            value = await loader(key)
        except BaseException as exc:
            error = exc
            if isinstance(exc, Exception):
                return
            if not isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt, SystemExit)):
                mine.interrupt = exc
                return
            raise
        if store:
            try:
                if store is True:
                    cache._insert(key, value, mine)
                else:
                    store(key, value)
            except Exception as exc:  # a colliding key's __eq__: the value is not cached
                mine.loop.call_exception_handler(
                    {"message": f"caching the loaded value of {key!r} failed", "exception": exc}
                )
    finally:
        _complete(stripe, key, mine, value, error)


async def aload(
    cache: ConcurrentCache[Any, Any],
    key: Any,
    loader: Callable[[Any], Awaitable[Any]],
    timeout: float | None,
    store: bool | Callable[[Any, Any], None],
    *,
    recheck: Callable[[], Any] | None = None,
) -> Any:
    """The miss path of ``aget_or_load``: join or start the key's flight and
    wait for it.  ``timeout``: validated seconds or None.  ``store=False``
    (``@cached(maxsize=0)``): single-flight only, nothing is cached; a
    callable: ``store(key, value)`` keeps the value elsewhere (the lru_cache
    engine of async ``@cached``), and ``recheck()`` (value or MISSING), called
    once this call owns a new flight, finds a value stored there since the
    caller looked (the flight then ends with it, no load).

    Counts one miss for the call that starts the load, and for a waiter one
    hit (the load succeeded) or one miss (it failed, or the wait timed out);
    a waiter cancelled before the outcome counts nothing."""
    loop = asyncio.get_running_loop()
    stripe = cache._stripe(key)
    me = threading.get_ident()
    end = None if timeout is None else time.monotonic() + timeout
    while True:
        mine = _ALoad(me, loop)
        started = joined = False
        found: Any = MISSING
        try:
            load, value = cache._begin(key, stripe, mine)
            joined = load is not mine  # (then ``mine`` was never registered)
            if load is None:  # installed since the caller looked: a hit, counted
                return value
            if load is mine and recheck is not None:
                found = recheck()
                if found is not MISSING:  # stored since the caller looked: a hit
                    cache._record(key)
                    return found
            if load is mine:
                cache._record(_MISS)
                coro = _run(cache, key, loader, mine, stripe, store=store)
                try:
                    task = loop.create_task(coro)
                except BaseException:
                    coro.close()
                    raise
                mine.task = weakref.ref(task)
                # A task cancelled before its first step never enters _run's
                # ``finally`` (nor does one interrupted before it): the done
                # callback completes the flight then (idempotent).
                task.add_done_callback(functools.partial(_finished, stripe, key, mine))
                started = True
        finally:
            if not started and not joined:  # no task will complete ``mine``: do it here
                _complete(stripe, key, mine, found, None)
        if load is not mine:
            _check_recursion(cache, key, load, me)
            if isinstance(load, _ALoad) and load.loop.is_closed() and not load.done:
                # Its loop was closed with the load pending: it can never finish.
                _complete(stripe, key, load, MISSING, None)
                continue
        if not await _wait(load, stripe, key, loop, end):
            if load is not mine:
                cache._record(_MISS)
            raise TimeoutError(f"timed out waiting for the load of {key!r}")
        if load.error is not None:
            if load is mine:  # the call that started the load: the loader's own exception
                raise load.error
            error = _waiter_error(load.error)
            if error is None:  # an exception that cannot be copied: start over
                continue
            cache._record(_MISS)
            raise error
        if load is mine and mine.interrupt is not None:
            raise mine.interrupt
        if load.value is MISSING:  # the load was cancelled or interrupted: start over
            continue
        if load is not mine:
            cache._record(key)
        return load.value


def _check_recursion(cache: ConcurrentCache[Any, Any], key: Any, load: _Load, me: int) -> None:
    """Waiting for ``load`` from inside its own loader would never end."""
    if load.done:
        return
    if isinstance(load, _ALoad):
        own = load.task is not None and load.task() is asyncio.current_task()
    else:  # a thread's synchronous load: this thread is running its loader
        own = load.owner == me
    if own:
        cache._record(_MISS)
        raise RuntimeError(f"recursive load of key {key!r} from its own loader")


async def _wait(
    load: _Load,
    stripe: _Stripe,
    key: Any,
    loop: asyncio.AbstractEventLoop,
    end: float | None,
) -> bool:
    """Wait until ``load`` is done; False on timeout.  Cancellation (or any
    exception) unlists the waiter and propagates; the load goes on."""
    fut: asyncio.Future[None] = loop.create_future()
    w = _AWaiter(loop, fut)
    with stripe.lock:
        if load.done:
            return True
        waiters: list[Any] = load.waiters  # (a lock-like waiter joins the locks)
        waiters.append(w)
    owner_loop = load.loop if isinstance(load, _ALoad) else None
    cross = owner_loop is not None and owner_loop is not loop
    try:
        while not fut.done():
            step: float | None = _POLL if cross else None
            if end is not None:
                left = end - time.monotonic()
                if left <= 0:
                    break
                step = left if step is None else min(step, left)
            if step is None:
                await fut
                continue
            await asyncio.wait((fut,), timeout=step)
            if fut.done() or not cross:
                continue
            if owner_loop is not None and owner_loop.is_closed():
                # Its task can no longer run: end the flight (the waiters start over).
                _complete(stripe, key, load, MISSING, None)
                break
    finally:
        if not w.fired:  # cancelled, timed out or interrupted: unlist it
            w.fired = True
            with stripe.lock:
                if w in waiters:
                    waiters.remove(w)
    return load.done
