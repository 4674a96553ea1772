"""``@cached`` on functions, methods, staticmethods and classmethods type-checks
under ``mypy --strict``, including ``cache_info()`` through the class and an
instance (skipped when mypy is not installed)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

SNIPPET = textwrap.dedent(
    """
    from conctools.cache import CacheInfo, cached

    @cached(maxsize=8)
    def f(x: int) -> str:
        return str(x)

    @cached
    def g(x: int) -> int:
        return x

    class Svc:
        @cached(maxsize=8, ttl=60.0)
        def lookup(self, key: str) -> int:
            return len(key)

        @staticmethod
        @cached(maxsize=8)
        def static(key: str) -> int:
            return len(key)

        @classmethod
        @cached(maxsize=8, key=lambda cls, key: key)
        def klass(cls, key: str) -> int:
            return len(key)

    s: str = f(1)
    n: int = g(2)
    m: int = Svc().lookup("a")
    info: CacheInfo = Svc.lookup.cache_info()
    info2: CacheInfo = Svc().lookup.cache_info()
    k: int = Svc.static("a") + Svc.klass("b")
    f.cache_clear()
    params = f.cache_parameters()
    """
)


def test_cached_type_checks_under_mypy_strict(tmp_path: Path) -> None:
    api: Any = pytest.importorskip("mypy.api")
    path = tmp_path / "snippet.py"
    path.write_text(SNIPPET)
    out, err, status = api.run(["--strict", "--no-incremental", str(path)])
    assert status == 0, out + err
