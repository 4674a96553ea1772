"""Reader-writer lock with an explicit fairness policy, timeouts, downgrade,
misuse detection, and ``threading.Lock``-compatible read and write sides.

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
  (yielding) briefly, then park on a private lock until a writer wakes them.
  The gate only steers fairness: mutual exclusion never depends on it,
  because a writer holds every slot;
* "fair" adds read phases: when a writer releases, the readers that were
  waiting at that instant are admitted together, and the next writer waits
  until they have entered (phase-fair, Brandenburg & Anderson 2010).

Failure paths.  An exception raised by a signal handler (KeyboardInterrupt)
can arrive after any call returns.  So every piece of shared state is
*recorded by the step that takes it*, in a form the undo path can read back:
slot and ``_wlock`` holds are RLock ownership (set by the C acquire itself),
waiting readers and writers are entries in lists (one C call adds them), and
the writer is installed by plain stores that follow its last call.  Every
acquisition runs inside ``try`` and undoes, on any exception, exactly what
that state says it took; the undo and the release paths are idempotent, so
an interrupted release is simply run again.  Parked threads also wake up
every ``_POLL`` seconds to re-check the state, so a wake-up lost to an
interrupted releaser delays them, never strands them.
"""

from __future__ import annotations

import _thread
import operator
import os
import re
import threading
import weakref
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Final, Literal, NoReturn

from ._internal.timeouts import Deadline, check_lock_args, check_timeout, lock_timeout

__all__ = ["RWLock", "RWLockPolicy", "ReadLock", "WriteLock"]

RWLockPolicy = Literal["writer", "reader", "fair"]
_POLICIES: Final = ("writer", "reader", "fair")

_get_ident = _thread.get_ident
_RLock = _thread.RLock
_allocate_lock = _thread.allocate_lock
_rl_acquire: Final = _RLock.acquire
_rl_release: Final = _RLock.release
_rl_is_owned: Final[Callable[[Any], bool]] = _RLock._is_owned  # type: ignore[attr-defined]
_rl_release_save: Final[Callable[[Any], tuple[int, int]]] = _RLock._release_save  # type: ignore[attr-defined]
_rl_enter: Final = _RLock.__enter__
# Waits expected to be short (a writer's critical section, readers of a read
# phase entering) first yield the CPU this many times before parking.
_SPINS: Final = 128
# A parked thread re-checks the state at least this often (seconds): the
# wake-up of an interrupted releaser may be lost.
_POLL: Final = 0.05
_yield: Final[Callable[[], None]] = getattr(os, "sched_yield", lambda: None)
# "<locked conctools.rwlock._ReadGuard object owner=140.. count=1 at 0x..>"
_REPR_OWNER: Final = re.compile(r"^<locked .* owner=(\d+) count=(\d+)")


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

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("cannot pickle or copy a read guard")


def _slot_state_by_repr(slot: _ReadGuard) -> tuple[int, int] | None:
    """(owner ident, count) of ``slot`` (a reader, or a writer excluding it),
    or None when free.  Reads the C ``RLock.__repr__``: no side effect."""
    m = _REPR_OWNER.match(_RLock.__repr__(slot))
    return (int(m.group(1)), int(m.group(2))) if m else None


def _slot_owner_by_repr(slot: _ReadGuard) -> int | None:
    """Thread ident holding ``slot``, or None when free."""
    st = _slot_state_by_repr(slot)
    return None if st is None else st[0]


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
    with probe:
        return _slot_owner_by_repr(probe) == _get_ident()


_REPR_OK: Final = _repr_reports_owner()
_slot_owner: Final = _slot_owner_by_repr if _REPR_OK else _slot_owner_by_probe


def _own_count(slot: _ReadGuard) -> int:
    """How many times the calling thread holds ``slot``."""
    if not _rl_is_owned(slot):
        return 0
    count = getattr(slot, "_recursion_count", None)
    if count is not None:  # 3.12+
        return int(count())
    st = _slot_state_by_repr(slot) if _REPR_OK else None
    if st is not None:
        return st[1]
    # Last resort: count by releasing and re-taking (we own it: never waits).
    n = _rl_release_save(slot)[0]
    for _ in range(n):
        _rl_acquire(slot)
    return n


class _SlotToken:
    """Stored next to a thread's read slot in the lock's ``threading.local``;
    when that namespace is cleared (the thread ends, or the RWLock goes), its
    ``__del__`` drops the slot's registry entry (one C call; a dead weakref
    compares by identity).

    The slot itself carries no weakref callback: on CPython 3.10, a Python
    weakref callback on a ``_thread.RLock`` subclass instance that dies while
    a ``threading.local`` is torn down (a thread ending while the lock is
    destroyed) corrupts the interpreter's heap; the same work done by a plain
    object's ``__del__`` is safe.  ``__del__`` may run during interpreter
    finalization: it uses attributes only, never module globals.
    """

    __slots__ = ("entry", "slots")

    def __init__(self, slots: list[Any], entry: object) -> None:
        self.slots = slots
        self.entry = entry

    def __del__(self) -> None:
        try:  # noqa: SIM105  (no contextlib.suppress: module globals may be gone)
            self.slots.remove(self.entry)
        except (AttributeError, ValueError):  # __init__ interrupted, or already gone
            pass


def _no_copy(obj: object, *args: object) -> NoReturn:
    raise TypeError(f"cannot pickle or copy {type(obj).__qualname__!r} object")


def _lock_args(timeout: float | None, blocking: bool) -> float | None:
    """``threading.Lock.acquire``'s argument rules; None: wait forever."""
    return check_lock_args(blocking, timeout)


class _TimedWrite:
    """Context manager for ``write(timeout)``: acquire on entry (TimeoutError if
    not granted), release on exit. All-or-nothing on entry."""

    __slots__ = ("_rw", "_t", "_timeout")

    def __init__(self, rw: RWLock, timeout: float | None, t: float | None) -> None:
        self._rw = rw
        self._timeout = timeout
        self._t = t

    def __enter__(self) -> None:
        rw = self._rw
        me = _get_ident()
        if rw._writer == me:
            rw._wcount += 1  # re-entrant: plain stores, nothing to interrupt
            return
        try:
            ok = rw._acquire_write(me, self._t)
        except BaseException:
            rw._write_abort(me)  # also undoes a grant the interrupt came after
            raise
        if not ok:
            raise TimeoutError(f"write lock not acquired within {self._timeout} s")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._rw.release_write()

    __reduce_ex__ = _no_copy


class _TimedRead:
    """Context manager for ``read(timeout)`` and for ``read()`` while the gate
    is closed. When the thread already has a slot, ``__exit__`` resolves (in
    C, through ``attrgetter``) to the slot's own C ``__exit__``: the release
    cannot be interrupted before it starts."""

    __slots__ = ("_exit", "_rw", "_t", "_timeout")

    def __init__(self, rw: RWLock, timeout: float | None, t: float | None) -> None:
        self._rw = rw
        self._timeout = timeout
        self._t = t
        slot = rw._local.__dict__.get("slot")
        self._exit = slot.__exit__ if slot is not None else self._release

    # Looked up by ``with`` before __enter__ runs; C all the way down.
    __exit__ = property(operator.attrgetter("_exit"))

    def _release(self, *exc_info: object) -> None:
        self._rw.release_read()

    def __enter__(self) -> None:
        rw = self._rw
        slot = rw._local.__dict__.get("slot")
        if slot is not None and _rl_is_owned(slot):
            try:
                _rl_acquire(slot)  # re-entrant: never waits
                return
            except BaseException:
                _rl_release(slot)  # the interrupt came after the acquire
                raise
        # The thread holds no read lock: "owned afterwards" means "taken now".
        try:
            ok = rw._acquire_read_slow(slot, self._t)
        except BaseException:
            rw._read_abort()
            raise
        if not ok:
            raise TimeoutError(f"read lock not acquired within {self._timeout} s")

    __reduce_ex__ = _no_copy


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

    Use :meth:`read` / :meth:`write` (context managers), the explicit
    :meth:`acquire_read` / :meth:`release_read` / :meth:`acquire_write` /
    :meth:`release_write` pairs, or the lock objects :attr:`reader` and
    :attr:`writer`, which implement the :class:`threading.Lock` protocol and
    can be passed wherever a lock is expected (e.g. to
    :class:`threading.Condition`).

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
    thread may keep writers out for good. The lock cannot be copied or
    pickled (:class:`TypeError`, as for :class:`threading.Lock`); subclasses
    may add state and methods.

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
    and then return ``False``: ``None``, ``-1`` and ``math.inf`` wait forever,
    ``0`` (or ``blocking=False``) tries once, values above
    :data:`threading.TIMEOUT_MAX` are clamped; :meth:`read` and :meth:`write`
    raise :class:`TimeoutError` instead. An acquisition is all-or-nothing,
    also when an exception (``KeyboardInterrupt`` from a signal handler)
    interrupts it at any point: it either raises and leaves no trace (no
    phantom reader or writer, waiting counts back, no slot held), or returns
    the lock. A release interrupted after it began still completes; one
    interrupted before its first step leaves the hold in place, which
    :meth:`holds_read` / :meth:`holds_write` report (call the release again).
    ``with rw.read():`` enters and exits in C, like ``with lock:``.
    Re-entrant acquisitions never block.

    **Complexity.** An uncontended read acquire/release is O(1) and writes only
    the calling thread's own slot. A write acquire/release is O(T), T being the
    number of live threads that have ever read through this lock (the writer
    visits each thread's slot). Memory is one small lock object per live
    reading thread; a thread's entry is dropped when the thread ends.
    """

    __slots__ = (
        "__weakref__",
        "_acquirer",
        "_admitted",
        "_fair",
        "_gate",
        "_held",
        "_local",
        "_mutex",
        "_policy",
        "_reader_obj",
        "_reader_pref",
        "_rwaiters",
        "_slots",
        "_version",
        "_wcm",
        "_wcount",
        "_wlock",
        "_wparked",
        "_writer",
        "_writer_obj",
        "_wwaiters",
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
        self._wlock = _RLock()  # serialises writers; ownership is the record
        # Guarded by _mutex (the slot registry is also pruned by the slot
        # tokens when a reading thread ends, without the mutex):
        self._gate = False  # True: new readers take the slow path and wait
        self._slots: list[weakref.ref[_ReadGuard]] = []
        self._writer: int | None = None  # ident of the thread holding the write lock
        self._acquirer: int | None = None  # ident of a writer taking the slots
        self._wcount = 0  # its re-entrancy count
        self._held: list[_ReadGuard] = []  # slots the writer holds
        self._wwaiters: list[int] = []  # writers that asked and are not in yet
        self._wparked: list[Any] = []  # their parking locks ("fair" read phase)
        self._rwaiters: list[Any] = []  # parking locks of readers at the gate
        self._admitted: list[Any] = []  # "fair": readers admitted by a phase, not yet in
        # Even: no writer; odd: a writer holds the lock.
        self._version = 2
        self._wcm = _TimedWrite(self, None, None)  # shared by every write()
        self._reader_obj = ReadLock(self)
        self._writer_obj = WriteLock(self)

    __reduce_ex__ = _no_copy  # also refuses copy.copy() and copy.deepcopy()

    # ------------------------------------------------------------ lock objects

    @property
    def reader(self) -> ReadLock:
        """The read side as a :class:`threading.Lock`-compatible object (:class:`ReadLock`)."""
        return self._reader_obj

    @property
    def writer(self) -> WriteLock:
        """The write side as a :class:`threading.Lock`-compatible object (:class:`WriteLock`)."""
        return self._writer_obj

    # ------------------------------------------------------------------ read

    def acquire_read(self, timeout: float | None = None, blocking: bool = True) -> bool:
        """Acquire the read lock; return ``False`` if ``timeout`` passes first.

        ``timeout``: ``None``, ``-1`` or ``inf`` wait forever, ``0`` tries
        once; ``blocking=False`` is the :meth:`threading.Lock.acquire`
        spelling of a single try. Re-entrant: a thread that holds the read (or
        write) lock gets a further read hold at once. Each successful call
        needs one :meth:`release_read`.
        """
        try:
            slot: _ReadGuard = self._local.slot
        except AttributeError:
            try:
                return self._acquire_read_slow(None, _lock_args(timeout, blocking))
            except BaseException:
                self._read_abort()  # held nothing before: undo what was taken
                raise
        if self._gate or timeout is not None or blocking is not True:
            t = _lock_args(timeout, blocking)
            if not _rl_is_owned(slot):
                try:
                    return self._acquire_read_slow(slot, t)
                except BaseException:
                    if _rl_is_owned(slot):  # not owned before: taken now
                        _rl_release(slot)
                    raise
        try:
            return _rl_acquire(slot)
        except BaseException:
            # Only the acquire's own wait (nothing taken) or the check after
            # it returned (taken) can raise here: owned now means taken now,
            # also when re-entrant.
            if _rl_is_owned(slot):
                _rl_release(slot)
            raise

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
        raises :class:`TimeoutError` if the lock is not granted in time
        (``None``, ``-1``, ``inf``: wait forever). The returned object is
        meant for a single ``with`` statement, right away, in the calling
        thread (it may be that thread's own read guard); the value bound by
        ``as`` is unspecified.
        """
        if timeout is None and not self._gate:
            try:
                slot: _ReadGuard = self._local.slot
            except AttributeError:
                pass
            else:
                return slot
        t = check_timeout(timeout, negative="lock")
        return _TimedRead(self, timeout, t)

    def _register(self) -> _ReadGuard:
        """Create the calling thread's slot (``self._mutex`` held).

        The token that will drop the registry entry exists before the entry
        goes in: if an interrupt lands before the thread-local references are
        stored, the token dies with this frame and removes the entry.  A
        token that replaces an earlier one (an earlier registration was
        interrupted after storing it) removes that one's entry as it dies."""
        slot = _ReadGuard()
        entry = weakref.ref(slot)
        slots = self._slots
        token = _SlotToken(slots, entry)
        slots.append(entry)
        local = self._local
        local.token = token
        local.slot = slot
        return slot

    def _read_abort(self) -> None:
        """Undo an interrupted first read hold of the calling thread (it held
        no read lock before): release the slot if taken, leave the queues."""
        slot = self._local.__dict__.get("slot")
        if slot is not None and _rl_is_owned(slot):
            _rl_release(slot)

    def _acquire_read_slow(self, slot: _ReadGuard | None, t: float | None) -> bool:
        """Read acquisition with a timeout, a closed gate or no slot yet.

        ``t``: None forever, else seconds (0: try once)."""
        if slot is None:
            slot = self._local.__dict__.get("slot")
        if slot is not None:
            if _rl_is_owned(slot):
                try:
                    return _rl_acquire(slot)  # re-entrant
                except BaseException:
                    _rl_release(slot)  # raised by the check after the acquire
                    raise
            if not self._gate or self._writer == _get_ident():
                # Gate open, or we are the writer (whose own slot nobody takes).
                try:
                    return _rl_acquire(slot, True, lock_timeout(t))
                except BaseException:
                    if _rl_is_owned(slot):  # not owned before: taken now
                        _rl_release(slot)
                    raise
            # Most gate closures last one short write: spin a little before
            # queueing (a spinning reader is not yet counted as waiting).
            if t is None or t > 0:
                spins = _SPINS
                while spins and self._gate:
                    _yield()
                    spins -= 1
        deadline = Deadline(t)
        w = _allocate_lock()
        w.acquire()
        try:
            while True:
                with self._mutex:
                    if w in self._admitted or not self._gate or self._writer == _get_ident():
                        if w in self._rwaiters:
                            self._rwaiters.remove(w)
                        if slot is None:
                            slot = self._register()
                        break
                    if w not in self._rwaiters:
                        self._rwaiters.append(w)
                remaining = deadline.remaining()
                if remaining is not None and remaining <= 0:
                    return False
                w.acquire(True, _POLL if remaining is None else min(remaining, _POLL))
            # Free at once unless a writer holds it: one that got in after we
            # passed the gate, or is still releasing.
            return _rl_acquire(slot, True, lock_timeout(deadline.remaining()))
        except BaseException:
            slot = self._local.__dict__.get("slot")
            if slot is not None and _rl_is_owned(slot):
                _rl_release(slot)  # held nothing before: taken by this attempt
            raise
        finally:
            # Leave the queues (idempotent; also after a timeout or success).
            with self._mutex:
                if w in self._rwaiters:
                    self._rwaiters.remove(w)
                if w in self._admitted:
                    self._admitted.remove(w)
                    if not self._admitted:
                        self._wake()

    def _wake(self) -> None:
        """Wake every parked thread to re-check the state (``_mutex`` held).
        Idempotent; a parked thread also re-checks every ``_POLL`` s."""
        for q in (self._rwaiters, self._admitted, self._wparked):
            for w in q:
                if w.locked():
                    w.release()

    # ----------------------------------------------------------------- write

    def acquire_write(self, timeout: float | None = None, blocking: bool = True) -> bool:
        """Acquire the write lock; return ``False`` if ``timeout`` passes first.

        ``timeout`` and ``blocking`` as for :meth:`acquire_read`. Re-entrant
        for the thread holding the write lock. Raises :class:`RuntimeError` if
        the calling thread holds the read lock (upgrading would deadlock).
        """
        t = None if timeout is None and blocking is True else _lock_args(timeout, blocking)
        me = _get_ident()
        if self._writer == me:
            self._wcount += 1
            return True
        try:
            return self._acquire_write(me, t)
        except BaseException:
            self._write_abort(me)  # also undoes a grant the interrupt came after
            raise

    def _acquire_write(self, me: int, t: float | None) -> bool:
        """A first write hold for ``me``; on False or an exception the caller
        runs :meth:`_write_abort`, which undoes whatever was taken."""
        own: _ReadGuard | None = self._local.__dict__.get("slot")
        if own is not None and _rl_is_owned(own):
            raise RuntimeError(
                "acquire_write(): the calling thread holds the read lock; upgrading "
                "would deadlock (release the read lock first, then re-check)"
            )
        ok = False
        try:
            # Fast path: no writer, no reader inside: take everything in one pass.
            if _rl_acquire(self._wlock, False):
                with self._mutex:
                    if not self._admitted and self._try_take_slots(me, own) is None:
                        ok = True
                        return True
            deadline = Deadline(t)
            if self._reader_pref:
                ok = self._acquire_write_reader_pref(me, own, deadline)
            else:
                ok = self._acquire_write_gated(me, own, deadline)
            return ok
        finally:
            if not ok:
                self._write_abort(me)

    def _live_slots(self, own: _ReadGuard | None) -> list[_ReadGuard]:
        """Slots of live reading threads other than ``own``."""
        live = []
        for r in self._slots.copy():  # an atomic copy
            s = r()
            if s is not None and s is not own:
                live.append(s)
        return live

    def _install(self, me: int, held: list[_ReadGuard]) -> None:
        """Make ``me`` the writer (``_mutex`` held, ``_wlock`` and every other
        slot taken). The last call comes first; then plain stores only."""
        if me in self._wwaiters:
            self._wwaiters.remove(me)
        self._acquirer = None
        self._held = held
        self._wcount = 1
        self._gate = True
        self._version += 1
        self._writer = me

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
        # self._install(me, held), inlined (the uncontended write path):
        if me in self._wwaiters:
            self._wwaiters.remove(me)
        self._acquirer = None
        self._held = held
        self._wcount = 1
        self._gate = True
        self._version += 1
        self._writer = me
        return None

    def _park(self, w: Any, deadline: Deadline) -> bool:
        """Wait on parking lock ``w`` (False: the deadline passed)."""
        remaining = deadline.remaining()
        if remaining is not None and remaining <= 0:
            return False
        w.acquire(True, _POLL if remaining is None else min(remaining, _POLL))
        return True

    def _acquire_write_gated(self, me: int, own: _ReadGuard | None, deadline: Deadline) -> bool:
        """Policies "writer" and "fair": announce (closing the gate to new
        readers), take ``_wlock``, wait out a "fair" read phase, then take
        every reader slot, blocking."""
        with self._mutex:
            self._wwaiters.append(me)
            self._gate = True
        if not _rl_is_owned(self._wlock) and not _rl_acquire(
            self._wlock, True, lock_timeout(deadline.remaining())
        ):
            return False
        for _ in range(_SPINS):
            if not self._admitted:
                break
            _yield()
        w: Any = None  # parking lock, made when first needed
        try:
            while True:
                with self._mutex:
                    if not self._admitted:
                        slots = self._live_slots(own)
                        self._acquirer = me
                        break
                    # "fair": the readers of the current read phase go first.
                    if w is None:
                        w = _allocate_lock()
                        w.acquire()
                    if w not in self._wparked:
                        self._wparked.append(w)
                if not self._park(w, deadline):
                    return False
        finally:
            # Only this thread adds or removes w: leave the queue on every path.
            if w is not None and w in self._wparked:
                with self._mutex:
                    if w in self._wparked:
                        self._wparked.remove(w)
        for s in slots:
            if not _rl_acquire(s, True, lock_timeout(deadline.remaining())):
                return False
        with self._mutex:
            # No slot can have been registered meanwhile: the gate is closed
            # and admitted readers have all arrived.
            self._install(me, slots)
        return True

    def _acquire_write_reader_pref(
        self, me: int, own: _ReadGuard | None, deadline: Deadline
    ) -> bool:
        """Policy "reader": readers are never held back for a waiting writer.
        The writer takes every slot in one non-blocking pass under the mutex,
        or backs off completely and waits for the reader it found."""
        if not _rl_is_owned(self._wlock) and not _rl_acquire(
            self._wlock, True, lock_timeout(deadline.remaining())
        ):
            return False
        with self._mutex:
            self._wwaiters.append(me)
        while True:
            with self._mutex:
                busy = self._try_take_slots(me, own)
                if busy is None:
                    return True
            # Wait until the reader we found leaves, without keeping it (or
            # anybody) out meanwhile.
            if not _rl_acquire(busy, True, lock_timeout(deadline.remaining())):
                return False
            _rl_release(busy)

    def _write_abort(self, me: int) -> None:
        """Undo whatever a failed or interrupted first write acquisition by
        ``me`` took, read back from the state (idempotent): the write lock if
        it was granted, reader slots, ``_wlock``, the waiting-writer entry."""
        if self._writer == me:
            self._wcount = 1
            self._release_write_final(me)
            return
        own = self._local.__dict__.get("slot")
        for s in self._live_slots(own):
            if _rl_is_owned(s):  # only a writer holds another thread's slot
                _rl_release(s)
        with self._mutex:
            while me in self._wwaiters:
                self._wwaiters.remove(me)
            if self._acquirer == me:
                self._acquirer = None
            if self._writer is None:
                self._gate = not self._reader_pref and self._wwaiters != []
            self._wake()
        if self._writer != me and _rl_is_owned(self._wlock):
            _rl_release(self._wlock)

    def release_write(self) -> None:
        """Release one write hold of the calling thread.

        Raises :class:`RuntimeError` if the calling thread does not hold the
        write lock. Read holds the thread took while writing are kept.
        """
        me = _get_ident()
        if self._writer != me:
            raise RuntimeError("release_write(): the calling thread does not hold the write lock")
        if self._wcount > 1:
            self._wcount -= 1
            return
        try:
            # self._release_write_final(me), inlined (the uncontended path)
            for s in self._held:
                _rl_release(s)  # each held exactly once: the writer took it
            with self._mutex:
                if self._fair and self._rwaiters:
                    waiting = self._rwaiters
                    self._rwaiters = []
                    self._admitted += waiting
                self._gate = not self._reader_pref and self._wwaiters != []
                self._held = []
                self._wcount = 0
                self._version += 1
                self._writer = None
                _rl_release(self._wlock)
                if self._rwaiters or self._admitted or self._wparked:
                    self._wake()
        except BaseException:
            self._release_write_final(me)  # finish what the interrupt cut short
            raise

    def _release_write_final(self, me: int) -> None:
        """Release the last write hold of ``me``. Idempotent: each step checks
        whether it is still to be done, so an interrupted run is completed by
        running it again."""
        for s in self._held:
            if _rl_is_owned(s):
                _rl_release(s)
        with self._mutex:
            if self._writer == me:
                # Plain stores, then one call (the _wlock release): no
                # interrupt can separate the writer's exit from it.
                if self._fair and self._rwaiters:
                    # Start a read phase: everybody waiting now goes before
                    # the next writer, which waits for _admitted to empty.
                    waiting = self._rwaiters
                    self._rwaiters = []
                    self._admitted += waiting
                self._gate = not self._reader_pref and self._wwaiters != []
                self._held = []
                self._wcount = 0
                self._version += 1
                self._writer = None
                _rl_release(self._wlock)
            if self._rwaiters or self._admitted or self._wparked:
                self._wake()

    def write(self, timeout: float | None = None) -> AbstractContextManager[object]:
        """Context manager holding the write lock for the ``with`` block.

        Raises :class:`TimeoutError` if the lock is not granted within
        ``timeout`` seconds (``None``, ``-1``, ``inf``: wait forever),
        :class:`RuntimeError` if the calling thread holds the read lock.
        """
        if timeout is None:
            return self._wcm
        return _TimedWrite(self, timeout, check_timeout(timeout, negative="lock"))

    def downgrade(self) -> None:
        """Turn the calling thread's write hold into a read hold, atomically.

        Equivalent to ``acquire_read(); release_write()`` with no writer able
        to get in between (the thread's read slot is taken before any other
        slot is released). Waiting readers are admitted as by a release. If
        the write lock was held re-entrantly, one write hold is converted and
        the thread still holds the rest. Raises :class:`RuntimeError` if the
        calling thread does not hold the write lock. If interrupted, it either
        has not happened or completes.
        """
        me = _get_ident()
        if self._writer != me:
            raise RuntimeError("downgrade(): the calling thread does not hold the write lock")
        slot: _ReadGuard | None = self._local.__dict__.get("slot")
        if slot is None:
            with self._mutex:
                slot = self._register()
        try:
            _rl_acquire(slot)  # the writer's own slot: never waits
        except BaseException:
            _rl_release(slot)  # raised by the check after the acquire
            raise
        if self._wcount > 1:
            self._wcount -= 1
            return
        try:
            self._release_write_final(me)
        except BaseException:
            self._release_write_final(me)
            raise

    # ------------------------------------------------------------ optimistic

    def optimistic(self) -> int:
        """Return a stamp for an optimistic read, or ``0`` while a writer holds
        the lock.

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
            n = 0
            for s in self._live_slots(None):
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
        return len(self._rwaiters) + len(self._admitted)

    @property
    def waiting_writers(self) -> int:
        """Number of writers that asked for the lock and are not in yet."""
        return len(self._wwaiters)

    def holds_read(self) -> bool:
        """Whether the calling thread holds the read lock."""
        slot = self._local.__dict__.get("slot")
        return slot is not None and bool(_rl_is_owned(slot))

    def holds_write(self) -> bool:
        """Whether the calling thread holds the write lock."""
        return self._writer == _get_ident()

    def _read_count(self) -> int:
        slot = self._local.__dict__.get("slot")
        return 0 if slot is None else _own_count(slot)

    def __repr__(self) -> str:
        state = "write-locked" if self._writer is not None else "unlocked-for-writes"
        return (
            f"<{type(self).__module__}.{type(self).__qualname__} policy={self._policy!r} "
            f"{state} readers={self.readers} waiting_readers={self.waiting_readers} "
            f"waiting_writers={self.waiting_writers}>"
        )


class _SideLock:
    """Shared part of :class:`ReadLock` and :class:`WriteLock`."""

    __slots__ = ("__weakref__", "_rw")

    def __init__(self, rw: RWLock) -> None:
        self._rw = rw

    @property
    def rwlock(self) -> RWLock:
        """The :class:`RWLock` this object is a side of."""
        return self._rw

    def locked(self) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError

    def __repr__(self) -> str:
        state = "locked" if self.locked() else "unlocked"
        cls = type(self)
        return (
            f"<{state} {cls.__module__}.{cls.__qualname__} object "
            f"policy={self._rw._policy!r} at {hex(id(self))}>"
        )

    __reduce_ex__ = _no_copy  # also refuses copy.copy() and copy.deepcopy()


class ReadLock(_SideLock):
    """The read side of an :class:`RWLock` as a :class:`threading.Lock`-style object.

    ``acquire(blocking=True, timeout=-1)``, ``release()``, ``locked()`` and
    ``with``, so it can be passed to code that takes a lock, including
    :class:`threading.Condition` (``wait`` releases every read hold of the
    thread and takes them back). The read side is *shared* and *re-entrant*:
    other threads acquire it too, and the holding thread may acquire it again
    (like :class:`threading.RLock`); only the thread that holds it may
    release it.

    **Thread safety.** Every method may be called from any thread; holds
    belong to the calling thread, as for :meth:`RWLock.acquire_read`.
    ``release()`` without a hold raises :class:`RuntimeError`.

    **Atomic operations.** ``acquire`` and ``release`` are those of
    :meth:`RWLock.acquire_read` / :meth:`RWLock.release_read`, with the same
    all-or-nothing behaviour when interrupted.

    **Iteration.** Not applicable.

    **Blocking and timeouts.** As :meth:`threading.Lock.acquire`: ``timeout=-1``
    (or ``None``) waits forever; ``blocking=False`` with a timeout raises
    :class:`ValueError`; other negative values raise :class:`ValueError`;
    values above :data:`threading.TIMEOUT_MAX` are clamped (``Lock`` raises
    :class:`OverflowError`); ``math.inf`` waits forever.

    **Complexity.** As the read side of :class:`RWLock`: O(1) uncontended.
    """

    __slots__ = ()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire a read hold; ``False`` if not granted in time."""
        t = None if blocking is True and timeout == -1 else _lock_args(timeout, blocking)
        # Inlined, not delegated to acquire_read(): an interrupt landing after a
        # delegated call returned would leave a hold that nobody reports taken.
        rw = self._rw
        try:
            slot: _ReadGuard | None = rw._local.slot
        except AttributeError:
            slot = None
        if slot is not None and _rl_is_owned(slot):
            try:
                return _rl_acquire(slot)  # re-entrant
            except BaseException:
                _rl_release(slot)  # raised by the check after the acquire
                raise
        try:
            if slot is not None and t is None and not rw._gate:
                return _rl_acquire(slot)
            return rw._acquire_read_slow(slot, t)
        except BaseException:
            rw._read_abort()  # held nothing before: undo what was taken
            raise

    def release(self) -> None:
        """Release one read hold of the calling thread (:class:`RuntimeError` if none)."""
        self._rw.release_read()

    def __enter__(self) -> bool:
        t = None  # as acquire(), inlined for the same reason
        rw = self._rw
        try:
            slot: _ReadGuard | None = rw._local.slot
        except AttributeError:
            slot = None
        if slot is not None and _rl_is_owned(slot):
            try:
                return _rl_acquire(slot)  # re-entrant
            except BaseException:
                _rl_release(slot)  # raised by the check after the acquire
                raise
        try:
            if slot is not None and t is None and not rw._gate:
                return _rl_acquire(slot)
            return rw._acquire_read_slow(slot, t)
        except BaseException:
            rw._read_abort()  # held nothing before: undo what was taken
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._rw.release_read()

    def locked(self) -> bool:
        """Whether some thread holds the read lock (a snapshot)."""
        return self._rw.readers > 0

    def _is_owned(self) -> bool:
        return self._rw.holds_read()

    def _recursion_count(self) -> int:
        return self._rw._read_count()

    def _release_save(self) -> int:
        n = self._rw._read_count()
        if n == 0:
            raise RuntimeError("cannot release un-acquired lock")
        slot = self._rw._local.slot
        _rl_release_save(slot)
        return n

    def _acquire_restore(self, state: int) -> None:
        rw = self._rw
        rw.acquire_read()
        slot = rw._local.slot
        for _ in range(state - 1):
            _rl_acquire(slot)  # re-entrant: never waits


class WriteLock(_SideLock):
    """The write side of an :class:`RWLock` as a :class:`threading.Lock`-style object.

    ``acquire(blocking=True, timeout=-1)``, ``release()``, ``locked()`` and
    ``with``, so it can be passed to code that takes a lock, including
    :class:`threading.Condition`. The write side is exclusive and
    *re-entrant* (like :class:`threading.RLock`); only the thread that holds
    it may release it.

    **Thread safety.** Every method may be called from any thread; holds
    belong to the calling thread, as for :meth:`RWLock.acquire_write`.
    ``release()`` without a hold raises :class:`RuntimeError`; ``acquire()``
    while holding the read lock raises :class:`RuntimeError` (upgrade).

    **Atomic operations.** ``acquire`` and ``release`` are those of
    :meth:`RWLock.acquire_write` / :meth:`RWLock.release_write`.

    **Iteration.** Not applicable.

    **Blocking and timeouts.** As :class:`ReadLock`.

    **Complexity.** As the write side of :class:`RWLock`: O(T) per acquire,
    T the live reading threads.
    """

    __slots__ = ()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire a write hold; ``False`` if not granted in time."""
        t = None if blocking is True and timeout == -1 else _lock_args(timeout, blocking)
        rw = self._rw
        me = _get_ident()
        if rw._writer == me:
            rw._wcount += 1  # re-entrant: plain stores, nothing to interrupt
            return True
        try:
            return rw._acquire_write(me, t)
        except BaseException:
            rw._write_abort(me)  # also undoes a grant the interrupt came after
            raise

    def release(self) -> None:
        """Release one write hold of the calling thread (:class:`RuntimeError` if none)."""
        self._rw.release_write()

    def __enter__(self) -> bool:
        rw = self._rw
        me = _get_ident()
        if rw._writer == me:
            rw._wcount += 1  # re-entrant: plain stores, nothing to interrupt
            return True
        try:
            return rw._acquire_write(me, None)
        except BaseException:
            rw._write_abort(me)  # also undoes a grant the interrupt came after
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._rw.release_write()

    def locked(self) -> bool:
        """Whether some thread holds the write lock."""
        return self._rw._writer is not None

    def _is_owned(self) -> bool:
        return self._rw.holds_write()

    def _recursion_count(self) -> int:
        rw = self._rw
        return rw._wcount if rw._writer == _get_ident() else 0

    def _release_save(self) -> int:
        rw = self._rw
        me = _get_ident()
        if rw._writer != me:
            raise RuntimeError("cannot release un-acquired lock")
        n = rw._wcount
        rw._wcount = 1
        rw.release_write()
        return n

    def _acquire_restore(self, state: int) -> None:
        rw = self._rw
        rw.acquire_write()
        rw._wcount = state
