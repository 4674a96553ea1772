"""Per-thread values that other threads can enumerate, retired when their thread exits.

This is the mechanism behind :class:`~conctools.counters.StripedCounter` and
:class:`~conctools.counters.ConcurrentCounter` (and available to any primitive
that wants per-thread shards). Not public API.

Why
---
On the free-threaded build, every touch of a *shared* object (one created by
another thread, or used by several) updates its reference count atomically on a
cache line the other cores also write: a method call on ONE shared object from
two threads scales about 1.3x, against 2x for one object per thread. A hot path
that must scale therefore has to reach state that the calling thread created and
that no other thread writes. ``threading.local`` gives each thread its own
attribute namespace; this module adds what a shard design also needs:

* a *registry* of every live thread's value, so a reader can sum/merge them;
* *retirement*: when a thread exits, its value is handed to ``on_exit`` (to fold
  it into a shared base) and dropped from the registry, so memory does not grow
  with thread churn and nothing the thread wrote is lost.

How
---
``PerThread(factory, on_exit)`` owns a ``threading.local`` (attribute
``local``). The first :meth:`PerThread.get` in a thread calls ``factory()`` *in
that thread* (so the value is owned by it: its refcount operations stay
thread-local), stores it as ``local.value`` and stores next to it a small
*token* object. The token is referenced only by that thread's local namespace;
when the thread exits, CPython clears the thread's ``threading.local``
namespaces, the token's ``__del__`` runs and retires the value: under
``lock`` it is removed from the registry and passed to ``on_exit``. Readers
that take ``lock`` therefore see every value either in the registry or already
folded by ``on_exit``, never both, never neither.

Hot paths inline the lookup rather than calling :meth:`get`::

    try:
        shard = self._local.value          # self._local = per_thread.local
    except AttributeError:
        shard = self._per_thread.register()

Rules for users of this module
------------------------------
* ``factory`` runs outside any lock. ``on_register(value)`` runs with ``lock``
  held, in the registering thread, right after the value joins the registry
  (use it to publish a copy-on-write view of the values for lock-free
  readers); it must be idempotent (an interrupted registration repeats it).
  ``on_exit(value)`` runs with ``lock`` held (an ``RLock``), in whatever
  thread drops the token (the exiting thread, during its teardown). When the
  ``PerThread`` itself is destroyed, the values of the threads still alive
  are dropped without ``on_exit`` (there is nothing left to fold them into). It must
  be short, must not block, and must not touch the ``PerThread``'s other
  methods except through the registry it is given.
* ``on_exit`` must not reference the ``PerThread`` or its owner (that would
  keep them alive through the tokens: a reference cycle through
  ``threading.local``); bind it to a separate state object instead.
* Values are *owned* by their thread: only that thread may mutate them in
  ways that are not atomic (``x.n += 1``). Other threads may read them and may
  perform atomic stores (replace an attribute) under ``lock``.
* On the free-threaded 3.13 build, calling ``dict.get`` (and other methods
  that lock the dict) on a dict owned by a thread that is blocked costs
  several microseconds; ``key in d`` and ``d[key]`` do not. Readers and
  ``on_exit`` should use the latter on dicts created by other threads.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["PerThread"]

T = TypeVar("T")


class _Registry(Generic[T]):
    """Live values by key, and the retirement callback. Holds no reference
    to the ``threading.local`` (so tokens can reference it without a cycle)."""

    __slots__ = ("live", "lock", "on_exit", "on_register")

    def __init__(
        self, on_register: Callable[[T], None] | None, on_exit: Callable[[T], None] | None
    ) -> None:
        self.lock = threading.RLock()
        self.live: dict[int, T] = {}
        self.on_register = on_register
        self.on_exit = on_exit

    def retire(self, key: int) -> None:
        with self.lock:
            live = self.live
            if key not in live:
                return
            value = live[key]
            del live[key]
            if self.on_exit is not None:
                self.on_exit(value)


class _Token:
    """Lives only in one thread's local namespace; retires the value on death.

    ``__del__`` may run during interpreter finalization, after module globals
    were cleared: it (and ``on_exit``) use only attributes, never globals.
    """

    __slots__ = ("_key", "_owner", "_registry", "pending")

    def __init__(self, registry: _Registry[Any], owner: weakref.ref[Any]) -> None:
        self._owner = owner  # the PerThread, weakly: once it is gone, nothing to retire into
        self._registry: _Registry[Any] | None = registry
        self._key: int | None = None  # set under the lock, before the value is live
        self.pending: Any = None  # the value being registered (kept: it is the thread's)

    def __del__(self) -> None:
        try:
            registry = self._registry
            key = self._key
            owner = self._owner
        except AttributeError:  # __init__ was interrupted: nothing was registered
            return
        if owner() is None:  # the PerThread (and its owner's state) is being destroyed
            return
        if registry is not None and key is not None:
            self._registry = None
            registry.retire(key)


def _can_own(
    _get_ident: Callable[[], int] = threading.get_ident,
    _active: dict[int, Any] = getattr(threading, "_active", {}),  # noqa: B008
    _has_active: bool = hasattr(threading, "_active"),
) -> bool:
    """Whether the calling thread may own a value that its exit will retire.

    A thread started by ``threading`` (or known to it: the main thread, a
    foreign thread after ``threading.current_thread()``) is in
    ``threading._active`` from before its target runs until after it
    returns; its ``threading.local`` namespaces are cleared after that, during
    its teardown. A value registered *during* the teardown (an increment from
    a ``__del__`` that runs while the thread's locals are being cleared) would
    land in a namespace that is never cleared again: such a thread, and a
    foreign thread unknown to ``threading``, must not own a value. Keyed by
    ``get_ident()`` but only for this instant: a thread identity is reused
    only after the teardown of the thread that had it.
    """
    if not _has_active:  # an interpreter without threading._active: no check
        return True
    return _get_ident() in _active


class PerThread(Generic[T]):
    """One value per thread, enumerable by all threads, retired at thread exit.

    ``factory()`` makes the calling thread's value; ``on_register(value)`` and
    ``on_exit(value)`` (both optional) run with ``lock`` held when a value
    joins the registry and when its thread has exited (see the module doc).
    ``local`` is the underlying ``threading.local``; the calling thread's
    value is ``local.value`` once registered. ``lock`` guards the registry and
    is held while ``on_exit`` runs.

    :meth:`register` (and :meth:`get`) return ``None`` in a thread that
    cannot own a value: one that is exiting (a ``__del__`` run during its
    teardown) or that ``threading`` does not know. Callers then update shared
    state under ``lock`` instead.
    """

    __slots__ = ("__weakref__", "_ids", "_registry", "factory", "local", "lock")

    def __init__(
        self,
        factory: Callable[[], T],
        on_exit: Callable[[T], None] | None = None,
        *,
        on_register: Callable[[T], None] | None = None,
    ) -> None:
        self.factory = factory
        self.local = threading.local()
        self._registry: _Registry[T] = _Registry(on_register, on_exit)
        self.lock = self._registry.lock
        self._ids = itertools.count()

    def get(self) -> T | None:
        """The calling thread's value, created on first use (``None``: see the class doc)."""
        try:
            value: T = self.local.value
        except AttributeError:
            return self.register()
        return value

    def register(self) -> T | None:
        """Create, register and return the calling thread's value.

        Called by hot paths when ``local.value`` is missing. If the thread
        already has a value, that value is returned; ``None`` if the thread
        cannot own one (exiting, or unknown to ``threading``).

        Restartable: an exception at any point (a signal handler raising)
        leaves a state that the next call completes, and nothing registered
        that is never retired. The token goes into the thread's namespace
        first and keeps the value it is registering (``pending``); the key
        is recorded on the token before the value joins ``live``; the
        registry insertion and ``on_register`` (which must be idempotent)
        are repeated by the next call.
        """
        local = self.local
        try:
            existing: T = local.value
        except AttributeError:
            pass
        else:
            return existing
        if not _can_own():
            return None
        registry = self._registry
        try:
            token: _Token = local.token  # left by an interrupted call
        except AttributeError:
            token = _Token(registry, weakref.ref(self))
            local.token = token
        value: T | None = token.pending
        if value is None:
            value = self.factory()  # outside the lock: user-visible code may run
            token.pending = value
        with registry.lock:
            if token._key is None:
                token._key = next(self._ids)
            registry.live[token._key] = value
            if registry.on_register is not None:
                registry.on_register(value)
        local.value = value
        return value

    def values(self) -> list[T]:
        """Values of the threads currently registered (a new list).

        Take ``lock`` around this call and the use of the values when the
        result must be consistent with ``on_exit`` folding.
        """
        with self.lock:
            return list(self._registry.live.values())

    def __len__(self) -> int:
        """Number of registered threads whose value has not been retired."""
        return len(self._registry.live)
