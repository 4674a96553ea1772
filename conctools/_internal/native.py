"""Which implementation runs: the C accelerator or the pure-Python reference.

The public modules ask :func:`native_attr` for a native type and fall back to
their pure-Python code when it answers ``None`` (the ``heapq``/``_heapq``
pattern).  The decision is made once, at import:

* ``CONCTOOLS_PURE_PYTHON=1`` forces the pure-Python implementation;
* otherwise ``conctools._native`` is used when it imports and matches the
  interface version this Python code expects;
* otherwise (no compiler at install time, a plain source checkout, another
  Python implementation) the pure-Python implementation runs.

:data:`REASON` says why, in words for users (``python -m conctools info``).
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

__all__ = ["ACTIVE", "REASON", "native_attr", "native_module"]

#: The native interface version this Python code expects (CT_ABI_VERSION).
ABI_VERSION = 1


def _load() -> tuple[ModuleType | None, str]:
    flag = os.environ.get("CONCTOOLS_PURE_PYTHON", "")
    if flag not in ("", "0"):
        return None, f"pure Python: CONCTOOLS_PURE_PYTHON={flag} is set"
    try:
        from conctools import _native  # type: ignore[attr-defined]
    except ImportError as exc:
        return None, (
            "pure Python: the C accelerator is not built "
            f"(installed without a C compiler, or run from a source checkout: {exc})"
        )
    found = getattr(_native, "ABI_VERSION", None)
    if found != ABI_VERSION:
        return None, (
            f"pure Python: the C accelerator is stale (interface {found}, expected "
            f"{ABI_VERSION}); reinstall conctools"
        )
    return _native, "native: the C accelerator is loaded"


_MODULE, REASON = _load()
#: ``"native"`` or ``"pure-python"``.
ACTIVE = "native" if _MODULE is not None else "pure-python"


def native_module() -> ModuleType | None:
    """The loaded ``conctools._native`` module, or None when pure Python runs."""
    return _MODULE


def native_attr(name: str) -> Any | None:
    """A native type or function by name, or None (pure Python runs, or the
    accelerator has no such name)."""
    if _MODULE is None:
        return None
    return getattr(_MODULE, name, None)
