"""The few ``test.support`` helpers the vendored CPython queue tests use.

Interpreters built without the ``test`` package (such as the provisioned
3.13 builds) lack ``test.support``; these stand-ins behave the same for the
tests that are run here.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import threading
import unittest
from collections.abc import Callable, Iterable, Iterator
from types import ModuleType
from typing import Any


def gc_collect() -> None:
    for _ in range(3):
        gc.collect()


def bigmemtest(size: int, memuse: int, dry_run: bool = True) -> Callable[[Any], Any]:
    return unittest.skip("bigmem tests are not run in the conformance suite")


class threading_helper:
    @staticmethod
    def requires_working_threading(*, module: bool = False) -> None:
        return None

    @staticmethod
    def join_thread(thread: threading.Thread, timeout: float = 30.0) -> None:
        thread.join(timeout)
        if thread.is_alive():
            raise AssertionError(f"failed to join the thread in {timeout} seconds")

    @staticmethod
    @contextlib.contextmanager
    def start_threads(threads: Iterable[threading.Thread]) -> Iterator[None]:
        started = []
        try:
            for t in threads:
                t.start()
                started.append(t)
            yield
        finally:
            for t in started:
                t.join(30)


class import_helper:
    @staticmethod
    def import_fresh_module(
        name: str, fresh: Iterable[str] = (), blocked: Iterable[str] = ()
    ) -> ModuleType | None:
        return importlib.import_module(name)
