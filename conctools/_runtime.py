"""Runtime detection: which build of CPython this is and whether the GIL is on."""

from __future__ import annotations

import os
import platform
import sys
import sysconfig
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["RuntimeInfo", "free_threaded_build", "gil_enabled", "runtime_info", "usable_cpu_count"]

SUMMARY_NO_SUPPORT = "Build does not support free-threading."
SUMMARY_GIL = "Running with the GIL enabled."
SUMMARY_FREE = "Running in free-threaded mode."


def free_threaded_build() -> bool:
    """Return True when this interpreter was built with ``--disable-gil``.

    >>> import conctools
    >>> isinstance(conctools.free_threaded_build(), bool)
    True
    """
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def gil_enabled() -> bool:
    """Return True when the GIL is active right now.

    Always True on builds without free-threading support (where
    ``sys._is_gil_enabled`` does not exist).  On a free-threaded build the GIL
    can be on because ``PYTHON_GIL=1`` / ``-X gil=1`` was given, or because an
    extension module that does not declare free-threading support was imported.
    """
    probe = getattr(sys, "_is_gil_enabled", None)
    if probe is None:
        return True
    return bool(probe())


def usable_cpu_count() -> int:
    """Number of CPUs this process may run on (affinity-aware), at least 1."""
    counter = getattr(os, "process_cpu_count", None)  # 3.13+
    if counter is not None:
        n = counter()
        if n:
            return int(n)
    if hasattr(os, "sched_getaffinity"):
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except OSError:  # pragma: no cover - exotic platforms
            pass
    return os.cpu_count() or 1


@dataclass(frozen=True)
class RuntimeInfo:
    """A snapshot of the interpreter's threading-relevant facts.

    **Thread safety.** Immutable (a frozen dataclass): share it freely.

    **Atomic operations.** None needed; it never changes after creation.

    **Iteration.** Not iterable; :meth:`as_dict` gives the fields.

    **Blocking and timeouts.** Never blocks.

    **Complexity.** O(1) per field.

    ``gil_enabled`` is the state when the snapshot was taken: importing an
    extension module that does not support free-threading can turn the GIL on
    later (unless ``PYTHON_GIL=0``).

    ``accelerator`` says which implementation of conctools runs: ``"native"``
    (the C accelerator ``conctools._native``) or ``"pure-python"`` (the
    reference implementation); ``accelerator_reason`` says why, in one line.
    Both implementations have the same semantics; the choice is made once, at
    import (see :doc:`/guides/implementation`).
    """

    python_version: str
    implementation: str
    free_threaded_build: bool
    gil_enabled: bool
    cpu_count: int
    platform: str
    executable: str
    accelerator: str
    accelerator_reason: str
    summary: str

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (JSON-serialisable)."""
        return asdict(self)


def runtime_info() -> RuntimeInfo:
    """Describe the running interpreter.

    ``summary`` is exactly one of ``"Build does not support free-threading."``,
    ``"Running with the GIL enabled."`` or ``"Running in free-threaded mode."``.

    >>> import conctools
    >>> info = conctools.runtime_info()
    >>> info.summary in (
    ...     "Build does not support free-threading.",
    ...     "Running with the GIL enabled.",
    ...     "Running in free-threaded mode.",
    ... )
    True

    ``accelerator`` is ``"native"`` when the C accelerator runs and
    ``"pure-python"`` otherwise; ``accelerator_reason`` says why:

    >>> info.accelerator in ("native", "pure-python")
    True
    >>> info.accelerator_reason.startswith(
    ...     "native: " if info.accelerator == "native" else "pure Python: "
    ... )
    True
    """
    from ._internal import native

    ft = free_threaded_build()
    gil = gil_enabled()
    if not ft:
        summary = SUMMARY_NO_SUPPORT
    elif gil:
        summary = SUMMARY_GIL
    else:
        summary = SUMMARY_FREE
    return RuntimeInfo(
        python_version=platform.python_version(),
        implementation=platform.python_implementation(),
        free_threaded_build=ft,
        gil_enabled=gil,
        cpu_count=usable_cpu_count(),
        platform=platform.platform(),
        executable=sys.executable,
        accelerator=native.ACTIVE,
        accelerator_reason=native.REASON,
        summary=summary,
    )
