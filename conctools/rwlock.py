"""Reader-writer lock with an explicit fairness policy, timeouts, downgrade and
misuse detection.

Design (see ``docs/primitives/rwlock.rst`` for the user-facing story):

* every thread that reads gets its own *read slot*, a ``_thread.RLock``
  created by that thread and found through a :class:`threading.local`.  A
  reader holds the read lock exactly when it holds its slot; re-entrant
  reads are the RLock's own recursion count, and "release what you do not
  hold" is the RLock's own ownership check.  An uncontended read touches no
  memory another reader writes (only the lock object's reference count);
* a writer excludes readers by acquiring every *other* thread's slot (its own
  slot is free while it writes, which is what lets it take a read hold and
  downgrade).  Writers are serialised among themselves by ``_wlock``;
* the *gate* (a bool readers test without locking) sends readers to the slow
  path whenever the policy says new readers must not start: a writer waiting
  or writing ("writer", "fair") or writing ("reader").  There they spin
  (yielding) briefly, then wait on their own slot (when only an active writer
  is in the way, not under "fair") or on a condition variable.  The gate only
  steers fairness: mutual exclusion never depends on it, because a writer
  holds every slot;
* "fair" adds read phases: when a writer releases, the readers that were
  waiting at that instant are admitted together, and the next writer waits
  until they have entered (phase-fair, Brandenburg & Anderson 2010).
"""

from __future__ import annotations

import _thread
import os
import re
import threading
import weakref
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Final, Literal

from ._internal.timeouts import Deadline, check_timeout, lock_timeout

__all__ = ["RWLock", "RWLockPolicy"]

RWLockPolicy = Literal["writer", "reader", "fair"]
_POLICIES: Final = ("writer", "reader", "fair")

_get_ident = _thread.get_ident
_RLock = _thread.RLock
_rl_acquire: Final = _RLock.acquire
_rl_release: Final = _RLock.release
_rl_is_owned: Final[Callable[[Any], bool]] = _RLock._is_owned  # type: ignore[attr-defined]
# Waits expected to be short (a writer's critical section, readers of a read
# phase entering) first yield the CPU this many times before parking.
_SPINS: Final = 128
_yield: Final[Callable[[], None]] = getattr(os, "sched_yield", lambda: None)
# "<locked conctools.rwlock._ReadGuard object owner=140.. count=1 at 0x..>"
_REPR_OWNER: Final = re.compile(r"^<locked .* owner=(\d+) ")


class _ReadGuard(_RLock):  # type: ignore[misc]  # typeshed marks RLock @final
    """A thread's read slot; ``with`` on it is a read hold (C-level enter/exit).

    ``RWLock.read()`` returns it on the fast path, so it must not act as a
    lock for callers: ``acquire``/``release`` refuse.  The class's own C
    ``__enter__``/``__exit__`` are unaffected, and the RWLock calls the base
    class methods directly.
    """

    __slots__ = ()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        raise TypeError("use RWLock.acquire_read() / RWLock.read(), not the guard")

    def release(self) -> None:
        raise TypeError("use RWLock.release_read() / RWLock.read(), not the guard")

    def __repr__(self) -> str:
        return "<conctools.rwlock read guard>"


def _slot_owner_by_repr(slot: _ReadGuard) -> int | None:
    """Thread ident holding ``slot`` (a reader, or a writer excluding it), or
    None when free.  Reads the C ``RLock.__repr__``: no side effect."""
    m = _REPR_OWNER.match(_RLock.__repr__(slot))
    return int(m.group(1)) if m else None


def _slot_owner_by_probe(slot: _ReadGuard) -> int | None:
    """Fallback if the repr format ever changes: a non-blocking try (may hold
    the slot up for an instant).  Returns -1 for "held by someone"."""
    if _rl_is_owned(slot):
        return _get_ident()
    if _rl_acquire(slot, False):
        _rl_release(slot)
        return None
    return -1


def _repr_reports_owner() -> bool:
    probe = _ReadGuard()
    _rl_acquire(probe)
    try:
        return _slot_owner_by_repr(probe) == _get_ident()
    finally:
        _rl_release(probe)


_slot_owner: Final = _slot_owner_by_repr if _repr_reports_owner() else _slot_owner_by_probe


class _TimedContext:
    """Context manager for ``read(timeout)`` (slow path) and ``write(timeout)``:
    acquire with the timeout on entry (TimeoutError if not granted), release on exit."""

    __slots__ = ("_acquire", "_release", "_timeout", "_what")

    def __init__(
        self,
        acquire: Callable[[float | None], bool],
        release: Callable[[], None],
        timeout: float | None,
        what: str,
    ) -> None:
        self._acquire = acquire
        self._release = release
        self._timeout = timeout
        self._what = what

    def __enter__(self) -> None:
        if not self._acquire(self._timeout):
            raise TimeoutError(f"{self._what} lock not acquired within {self._timeout} s")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release()


class RWLock:
    """A reader-writer lock: many concurrent readers or one writer, with a chosen fairness policy.

    ``RWLock(policy="writer")``. ``policy`` decides who goes first when readers
    and writers compete:

    * ``"writer"`` (default): a waiting writer blocks new readers, so a writer
      gets in as soon as the readers already inside have left. Continuous
      writers can starve readers.
    * ``"reader"``: readers never wait for a *waiting* writer, only for one
      that holds the lock. Highest read throughput, but a steady stream of
      overlapping readers starves writers indefinitely.
    * ``"fair"``: phase-fair. A waiting writer blocks new readers; when it
      releases, every reader that was waiting at that instant is admitted
      before the next writer. Neither side starves.

    Use :meth:`read` / :meth:`write` (context managers) or the explicit
    :meth:`acquire_read` / :meth:`release_read` / :meth:`acquire_write` /
    :meth:`release_write` pairs.

    **Thread safety.** All methods may be called from any thread. Holds are
    owned by threads, as in :class:`java.util.concurrent.locks.ReentrantReadWriteLock`:
    releasing a hold the calling thread does not own raises :class:`RuntimeError`,
    as does asking for the write lock while holding the read lock (the upgrade
    deadlock: two upgrading readers would wait for each other forever). Both
    locks are re-entrant under every policy: a thread holding the read lock
    gets it again at once even when writers wait (no self-deadlock); a thread
    holding the write lock may take it again, and may take the read lock too
    (it then keeps that read hold when it releases the write lock). Release
    every hold before a thread ends: as in Java, a hold left behind by an ended
    thread may keep writers out for good.

    **Atomic operations.** :meth:`downgrade` turns the calling thread's write
    hold into a read hold atomically: no writer can get in between, and
    other readers are admitted at once (subject to the policy). There is no
    upgrade; release the read lock and acquire the write lock, then re-check
    what you read.

    **Iteration.** Not applicable: the lock holds no elements. The
    introspection properties (:attr:`readers`, :attr:`write_locked`,
    :attr:`waiting_readers`, :attr:`waiting_writers`) are racy snapshots for
    debugging and monitoring, never for synchronisation.

    **Blocking and timeouts.** :meth:`acquire_read` and :meth:`acquire_write`
    block until the lock is granted, or until ``timeout`` seconds have passed
    (``None``: forever; ``0``: try once) and then return ``False``; :meth:`read`
    and :meth:`write` raise :class:`TimeoutError` instead. A timed-out or
    interrupted attempt leaves no trace: no phantom reader or writer, and the
    waiting counts drop back. Re-entrant acquisitions never block.

    **Complexity.** An uncontended read acquire/release is O(1) and writes only
    the calling thread's own slot. A write acquire/release is O(T), T being the
    number of live threads that have ever read through this lock (the writer
    visits each thread's slot). Memory is one small lock object per reading
    thread, freed when the thread ends.
    """

    __slots__ = (
        "__weakref__",
        "_acquirer",
        "_admitted",
        "_cond",
        "_fair",
        "_gate",
        "_held",
        "_local",
        "_mutex",
        "_phase",
        "_policy",
        "_reader_pref",
        "_rwait",
        "_sleepers",
        "_slots",
        "_version",
        "_wcm",
        "_wcount",
        "_wlock",
        "_writer",
        "_wwait",
    )

    def __init__(self, policy: RWLockPolicy = "writer") -> None:
        if not isinstance(policy, str):
            raise TypeError(f"policy must be a str, not {type(policy).__name__}")
        if policy not in _POLICIES:
            raise ValueError(f"unknown policy {policy!r}; expected one of {', '.join(_POLICIES)}")
        self._policy: RWLockPolicy = policy
        self._fair = policy == "fair"
        self._reader_pref = policy == "reader"
        self._local = threading.local()
        self._mutex = threading.Lock()
        self._cond = threading.Condition(self._mutex)
        self._wlock = threading.Lock()  # serialises writers
        # Guarded by _mutex:
        self._gate = False  # True: new readers take the slow path and wait
        self._slots: list[weakref.ref[_ReadGuard]] = []
        self._writer: int | None = None  # ident of the thread holding the write lock
        self._acquirer: int | None = None  # ident of a writer taking the slots
        self._wcount = 0  # its re-entrancy count
        self._held: list[_ReadGuard] = []  # slots the writer holds
        self._wwait = 0  # writers that asked and are not in yet
        self._rwait = 0  # readers waiting at the gate
        self._phase = 0  # "fair": bumped when a read phase starts
        self._admitted = 0  # "fair": readers admitted by a phase, not yet in
        self._sleepers = 0  # threads in self._cond.wait()
        # Even: no writer; odd: a writer holds (or is acquiring) the lock.
        self._version = 2
        self._wcm = _TimedContext(self.acquire_write, self.release_write, None, "write")  # shared

    # ------------------------------------------------------------------ read

    def acquire_read(self, timeout: float | None = None) -> bool:
        """Acquire the read lock; return ``False`` if ``timeout`` passes first.

        Re-entrant: a thread that holds the read (or write) lock gets a
        further read hold at once. Each successful call needs one
        :meth:`release_read`.
        """
        try:
            slot: _ReadGuard = self._local.slot
        except AttributeError:
            return self._acquire_read_slow(None, timeout)
        if self._gate or timeout is not None:
            return self._acquire_read_slow(slot, timeout)
        _rl_acquire(slot)
        return True

    def release_read(self) -> None:
        """Release one read hold of the calling thread.

        Raises :class:`RuntimeError` if the calling thread holds no read lock.
        """
        try:
            _rl_release(self._local.slot)
        except (AttributeError, RuntimeError):
            raise RuntimeError(
                "release_read(): the calling thread does not hold the read lock"
            ) from None

    def read(self, timeout: float | None = None) -> AbstractContextManager[object]:
        """Context manager holding the read lock for the ``with`` block.

        ``with lock.read(): ...`` or ``with lock.read(timeout=0.5): ...``;
        raises :class:`TimeoutError` if the lock is not granted in time. The
        returned object is meant for a single ``with`` statement, right away,
        in the calling thread (it may be that thread's own read guard); the
        value bound by ``as`` is unspecified.
        """
        if timeout is None and not self._gate:
            try:
                slot: _ReadGuard = self._local.slot
            except AttributeError:
                pass
            else:
                return slot
        elif timeout is not None:
            check_timeout(timeout)
        return _TimedContext(self.acquire_read, self.release_read, timeout, "read")

    def _register(self) -> _ReadGuard:
        """Create the calling thread's slot (``self._mutex`` held)."""
        slot = _ReadGuard()
        self._local.slot = slot
        self._slots.append(weakref.ref(slot))
        return slot

    def _acquire_read_slow(self, slot: _ReadGuard | None, timeout: float | None) -> bool:
        t = check_timeout(timeout)
        if slot is None:
            slot = self._local.__dict__.get("slot")
        if slot is not None:
            if _rl_is_owned(slot):
                _rl_acquire(slot)  # re-entrant: never waits, whatever the policy
                return True
            if not self._gate:
                return bool(_rl_acquire(slot, True, lock_timeout(t)))
        if self._writer == _get_ident():
            # The writer's own slot is never taken by anybody: take it.
            if slot is None:
                with self._mutex:
                    slot = self._register()
            _rl_acquire(slot)
            return True
        # Most gate closures last one short write: spin a little before
        # queueing (a spinning reader is not yet counted as waiting).
        spins = _SPINS if slot is not None else 0
        while spins and self._gate:
            _yield()
            spins -= 1
        deadline = Deadline(t)
        admitted = direct = False
        with self._mutex:
            if self._gate:
                if (
                    slot is not None
                    and not self._fair
                    and not self._wwait
                    and self._writer is not None
                ):
                    # Only an active writer is in the way, and it holds our
                    # slot: wait on the slot itself, which wakes us the moment
                    # the writer lets go (cheaper than the condition).
                    self._rwait += 1
                    direct = True
                else:
                    ok, admitted = self._wait_gate(deadline)
                    if not ok:
                        return False
            if slot is None:
                slot = self._register()
        try:
            # Free at once unless a writer holds it: one that got in after we
            # passed the gate, is still releasing, or is waited for directly.
            return bool(_rl_acquire(slot, True, lock_timeout(deadline.remaining())))
        finally:
            if admitted or direct:
                with self._mutex:
                    if direct:
                        self._rwait -= 1
                    else:
                        self._admitted -= 1
                        if self._admitted == 0 and self._sleepers:
                            self._cond.notify_all()

    def _wait_gate(self, deadline: Deadline) -> tuple[bool, bool]:
        """Wait (``self._cond`` held) until this reader may proceed.

        Returns ``(ok, admitted)``; ``admitted`` means a "fair" read phase let
        us in and we must report arrival in ``_admitted``.
        """
        phase = self._phase
        self._rwait += 1
        self._sleepers += 1
        try:
            while True:
                if self._fair and self._phase != phase:
                    return True, True  # the releasing writer moved us to _admitted
                if not self._gate:
                    self._rwait -= 1
                    return True, False
                remaining = deadline.remaining()
                if remaining is not None and remaining <= 0:
                    self._rwait -= 1
                    return False, False
                self._cond.wait(remaining)
        except BaseException:
            # Interrupted inside wait(); Condition.wait re-acquired the mutex.
            if self._fair and self._phase != phase:
                self._admitted -= 1
                if self._admitted == 0:
                    self._cond.notify_all()
            else:
                self._rwait -= 1
            raise
        finally:
            self._sleepers -= 1

    # ----------------------------------------------------------------- write

    def acquire_write(self, timeout: float | None = None) -> bool:
        """Acquire the write lock; return ``False`` if ``timeout`` passes first.

        Re-entrant for the thread holding the write lock. Raises
        :class:`RuntimeError` if the calling thread holds the read lock
        (upgrading would deadlock).
        """
        me = _get_ident()
        if self._writer == me:
            self._wcount += 1
            return True
        if timeout is not None:
            check_timeout(timeout)
        # (A missing attribute costs an exception: look in the thread's dict.)
        own: _ReadGuard | None = self._local.__dict__.get("slot")
        if own is not None and _rl_is_owned(own):
            raise RuntimeError(
                "acquire_write(): the calling thread holds the read lock; upgrading "
                "would deadlock (release the read lock first, then re-check)"
            )
        # Fast path: no writer, no reader inside: take everything in one pass.
        if self._wlock.acquire(False):
            try:
                with self._mutex:
                    if not self._admitted and self._try_take_slots(me, own) is None:
                        return True
            except BaseException:
                self._wlock.release()
                raise
            if self._reader_pref:
                return self._acquire_write_reader_pref(me, own, Deadline(timeout), True)
            return self._acquire_write_gated(me, own, Deadline(timeout), True)
        if self._reader_pref:
            return self._acquire_write_reader_pref(me, own, Deadline(timeout), False)
        return self._acquire_write_gated(me, own, Deadline(timeout), False)

    def _live_slots(self, own: _ReadGuard | None) -> list[_ReadGuard]:
        """Slots of live reading threads other than ``own`` (mutex held); prunes
        the slots of threads that ended."""
        live = []
        dead = False
        for r in self._slots:
            s = r()
            if s is None:
                dead = True
            elif s is not own:
                live.append(s)
        if dead:
            self._slots = [r for r in self._slots if r() is not None]
        return live

    def _try_take_slots(self, me: int, own: _ReadGuard | None) -> _ReadGuard | None:
        """With ``_wlock`` and ``_mutex`` held: try to take every other slot
        without blocking and become the writer. Returns None on success, else
        the slot of a reader inside (and takes nothing)."""
        held: list[_ReadGuard] = []
        for s in self._live_slots(own):
            if not _rl_acquire(s, False):
                for h in held:
                    _rl_release(h)
                return s
            held.append(s)
        self._writer = me
        self._wcount = 1
        self._held = held
        self._gate = True
        self._version += 1
        return None

    def _acquire_write_gated(
        self, me: int, own: _ReadGuard | None, deadline: Deadline, have_wlock: bool
    ) -> bool:
        """Policies "writer" and "fair": announce (closing the gate to new
        readers), take ``_wlock``, wait out a "fair" read phase, then take
        every reader slot, blocking."""
        with self._mutex:
            self._wwait += 1
            self._gate = True
        announced = True
        held: list[_ReadGuard] = []
        try:
            if not have_wlock:
                if not self._wlock.acquire(True, lock_timeout(deadline.remaining())):
                    return False
                have_wlock = True
            for _ in range(_SPINS):
                if not self._admitted:
                    break
                _yield()
            with self._cond:
                if self._admitted:
                    # "fair": the readers of the current read phase go first.
                    self._sleepers += 1
                    try:
                        while self._admitted:
                            remaining = deadline.remaining()
                            if remaining is not None and remaining <= 0:
                                return False
                            self._cond.wait(remaining)
                    finally:
                        self._sleepers -= 1
                slots = self._live_slots(own)
                self._acquirer = me
            for s in slots:
                if not _rl_acquire(s, True, lock_timeout(deadline.remaining())):
                    return False
                held.append(s)
            with self._mutex:
                # No slot can have been registered meanwhile: the gate is closed
                # and admitted readers have all arrived.
                self._wwait -= 1
                announced = False
                self._acquirer = None
                self._writer = me
                self._wcount = 1
                self._held = held
                self._version += 1
            return True
        finally:
            if announced:  # failed, timed out or interrupted: undo everything
                for s in held:
                    _rl_release(s)
                if have_wlock:
                    self._wlock.release()
                with self._cond:
                    self._wwait -= 1
                    if self._acquirer == me:
                        self._acquirer = None
                    if self._writer is None and self._wwait == 0:
                        self._gate = False
                    if self._sleepers:
                        self._cond.notify_all()

    def _acquire_write_reader_pref(
        self, me: int, own: _ReadGuard | None, deadline: Deadline, have_wlock: bool
    ) -> bool:
        """Policy "reader": readers are never held back for a waiting writer.
        The writer takes every slot in one non-blocking pass under the mutex,
        or backs off completely and waits for the reader it found."""
        if not have_wlock and not self._wlock.acquire(True, lock_timeout(deadline.remaining())):
            return False
        done = False
        with self._mutex:
            self._wwait += 1
        try:
            while True:
                with self._mutex:
                    busy = self._try_take_slots(me, own)
                    if busy is None:
                        self._wwait -= 1
                        done = True
                        return True
                # Wait until the reader we found leaves, without keeping it (or
                # anybody) out meanwhile.
                if not _rl_acquire(busy, True, lock_timeout(deadline.remaining())):
                    return False
                _rl_release(busy)
        finally:
            if not done:
                with self._mutex:
                    self._wwait -= 1
                self._wlock.release()

    def release_write(self) -> None:
        """Release one write hold of the calling thread.

        Raises :class:`RuntimeError` if the calling thread does not hold the
        write lock. Read holds the thread took while writing are kept.
        """
        if self._writer != _get_ident():
            raise RuntimeError("release_write(): the calling thread does not hold the write lock")
        if self._wcount > 1:
            self._wcount -= 1
            return
        for s in self._held:
            _rl_release(s)
        with self._mutex:
            self._held = []
            self._writer = None
            self._wcount = 0
            self._version += 1
            if self._fair and self._rwait:
                # Start a read phase: everybody waiting now goes before the
                # next writer, which waits for _admitted to drop to 0.
                self._phase += 1
                self._admitted += self._rwait
                self._rwait = 0
            self._gate = self._wwait > 0 and not self._reader_pref
            if self._sleepers:
                self._cond.notify_all()
        self._wlock.release()

    def write(self, timeout: float | None = None) -> AbstractContextManager[object]:
        """Context manager holding the write lock for the ``with`` block.

        Raises :class:`TimeoutError` if the lock is not granted within
        ``timeout`` seconds, :class:`RuntimeError` if the calling thread holds
        the read lock.
        """
        if timeout is None:
            return self._wcm
        check_timeout(timeout)
        return _TimedContext(self.acquire_write, self.release_write, timeout, "write")

    def downgrade(self) -> None:
        """Turn the calling thread's write hold into a read hold, atomically.

        Equivalent to ``acquire_read(); release_write()`` with no writer able
        to get in between (the thread's read slot is taken before any other
        slot is released). Waiting readers are admitted as by a release. If
        the write lock was held re-entrantly, one write hold is converted and
        the thread still holds the rest. Raises :class:`RuntimeError` if the
        calling thread does not hold the write lock.
        """
        if self._writer != _get_ident():
            raise RuntimeError("downgrade(): the calling thread does not hold the write lock")
        slot: _ReadGuard | None = self._local.__dict__.get("slot")
        if slot is None:
            with self._mutex:
                slot = self._register()
        _rl_acquire(slot)
        self.release_write()

    # ------------------------------------------------------------ optimistic

    def optimistic(self) -> int:
        """Return a stamp for an optimistic read, or ``0`` while a writer holds
        (or is acquiring) the lock.

        Read what you need, then call :meth:`validate`; act on the values only
        if it returns ``True`` (see the docs for what a reader may observe
        meanwhile). Writes no shared memory; never blocks.
        """
        v = self._version
        return 0 if v & 1 else v

    def validate(self, stamp: int) -> bool:
        """Return ``True`` if no writer has held the lock since ``stamp`` was
        issued by :meth:`optimistic` (a ``0`` stamp never validates)."""
        return stamp != 0 and self._version == stamp

    # --------------------------------------------------------- introspection

    @property
    def policy(self) -> RWLockPolicy:
        """The fairness policy: ``"writer"``, ``"reader"`` or ``"fair"``."""
        return self._policy

    @property
    def readers(self) -> int:
        """Number of threads holding the read lock (a snapshot)."""
        with self._mutex:
            acquirer = self._acquirer
            held = {id(s) for s in self._held}
            slots = [s for s in (r() for r in self._slots) if s is not None]
            n = 0
            for s in slots:
                if id(s) in held:
                    continue  # excluded by the writer
                owner = _slot_owner(s)
                # Slots a writer is still collecting are not read holds (a
                # thread asking for the write lock holds no read lock).
                if owner is not None and owner != acquirer:
                    n += 1
        return n

    @property
    def write_locked(self) -> bool:
        """Whether some thread holds the write lock."""
        return self._writer is not None

    @property
    def waiting_readers(self) -> int:
        """Number of readers waiting at the gate (a snapshot)."""
        return self._rwait + self._admitted

    @property
    def waiting_writers(self) -> int:
        """Number of writers that asked for the lock and are not in yet."""
        return self._wwait

    def holds_read(self) -> bool:
        """Whether the calling thread holds the read lock."""
        slot = self._local.__dict__.get("slot")
        return slot is not None and bool(_rl_is_owned(slot))

    def holds_write(self) -> bool:
        """Whether the calling thread holds the write lock."""
        return self._writer == _get_ident()

    def __repr__(self) -> str:
        state = "write-locked" if self._writer is not None else "unlocked-for-writes"
        return (
            f"<{type(self).__module__}.{type(self).__qualname__} policy={self._policy!r} "
            f"{state} readers={self.readers} waiting_readers={self.waiting_readers} "
            f"waiting_writers={self.waiting_writers}>"
        )
