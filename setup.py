"""Build script for the optional C accelerator (``conctools._native``).

Everything else is declared in pyproject.toml.  The extension is optional:
when no C compiler is available (or it fails), the build carries on without
it and conctools runs its pure-Python implementation, which is the reference.
Set ``CONCTOOLS_NO_NATIVE=1`` to skip the extension on purpose, and
``CONCTOOLS_NATIVE_CFLAGS`` to add compiler flags (the sanitizer builds do).
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from setuptools import Extension, setup

HERE = Path(__file__).parent


def _extensions() -> list[Extension]:
    if os.environ.get("CONCTOOLS_NO_NATIVE", "") not in ("", "0"):
        return []
    sources = sorted(str(p.relative_to(HERE)) for p in (HERE / "native").glob("*.c"))
    if not sources:  # an sdist or checkout without the C sources
        return []
    extra = shlex.split(os.environ.get("CONCTOOLS_NATIVE_CFLAGS", ""))
    return [
        Extension(
            "conctools._native",
            sources=sources,
            depends=sorted(str(p.relative_to(HERE)) for p in (HERE / "native").glob("*.h")),
            include_dirs=["native"],
            extra_compile_args=["-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter", *extra],
            extra_link_args=[f for f in extra if f.startswith("-fsanitize")],
            optional=True,
        )
    ]


setup(ext_modules=_extensions())
