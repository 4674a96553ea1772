"""conctools: thread-safe shared-state primitives for free-threaded CPython.

Every primitive is correct on both builds of CPython (with and without the
GIL) and documents its locking semantics precisely.
"""

from __future__ import annotations

from ._internal.sentinel import MISSING
from ._runtime import RuntimeInfo, free_threaded_build, gil_enabled, runtime_info

__version__ = "0.1.0"

__all__ = [
    "MISSING",
    "RuntimeInfo",
    "__version__",
    "free_threaded_build",
    "gil_enabled",
    "runtime_info",
]
