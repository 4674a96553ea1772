"""``@cached`` in user code: functions, methods, staticmethods, classmethods and
coroutine functions keep their return types, and ``cache_info()``,
``cache_clear()`` and ``cache_parameters()`` type-check on every form, through
the class and through an instance (mypy --strict and pyright strict)."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from typing_extensions import assert_type

from conctools.cache import CacheInfo, ConcurrentCache, cached


@cached
def bare(x: int) -> str:
    return str(x)


def first(x: int, y: int) -> int:
    return x


def second(cls: type[Svc], key: str) -> str:
    return key


@cached(maxsize=None, key=first)
def keyed(x: int, y: int) -> int:
    return x + y


@cached(maxsize=64, ttl=30.0, policy="tinylfu")
async def fetch(url: str) -> bytes:
    return url.encode()


@cached
async def bare_async(x: int) -> int:
    return x


class Svc:
    def __hash__(self) -> int:
        return 0

    @cached(maxsize=8)
    def lookup(self, key: str) -> int:
        return len(key)

    @staticmethod
    @cached(maxsize=8)
    def static(key: str) -> int:
        return len(key)

    @classmethod
    @cached(maxsize=8, key=second)
    def klass(cls, key: str) -> int:
        return len(key)

    @cached(maxsize=8)
    async def alookup(self, key: str) -> int:
        return len(key)

    @staticmethod
    @cached(maxsize=8)
    async def astatic(key: str) -> int:
        return len(key)

    @classmethod
    @cached(maxsize=8)
    async def aklass(cls, key: str) -> int:
        return len(key)


def functions() -> None:
    assert_type(bare(1), str)
    assert_type(keyed(1, 2), int)
    assert_type(bare.cache_info(), CacheInfo)
    assert_type(keyed.cache_info().currsize, int)
    bare.cache_clear()
    assert_type(bare.cache_parameters(), dict[str, Any])


async def coroutines() -> None:
    assert_type(await fetch("u"), bytes)
    assert_type(await bare_async(1), int)
    pending: Coroutine[Any, Any, bytes] = fetch("u")
    assert_type(await pending, bytes)
    assert_type(fetch.cache_info(), CacheInfo)
    fetch.cache_clear()
    assert_type(bare_async.cache_parameters(), dict[str, Any])


def methods() -> None:
    s = Svc()
    assert_type(s.lookup("a"), int)
    assert_type(Svc.static("a"), int)
    assert_type(s.static("a"), int)
    assert_type(Svc.klass("a"), int)
    assert_type(Svc.lookup.cache_info(), CacheInfo)
    assert_type(s.lookup.cache_info(), CacheInfo)
    assert_type(Svc.static.cache_info(), CacheInfo)
    assert_type(Svc.klass.cache_info(), CacheInfo)
    Svc.lookup.cache_clear()
    Svc.static.cache_clear()
    Svc.klass.cache_clear()
    assert_type(Svc.klass.cache_parameters(), dict[str, Any])


async def async_methods() -> None:
    s = Svc()
    assert_type(await s.alookup("a"), int)
    assert_type(await Svc.astatic("a"), int)
    assert_type(await Svc.aklass("a"), int)
    assert_type(Svc.alookup.cache_info(), CacheInfo)
    assert_type(s.alookup.cache_info(), CacheInfo)
    assert_type(Svc.astatic.cache_info(), CacheInfo)
    assert_type(Svc.aklass.cache_info(), CacheInfo)
    Svc.aklass.cache_clear()


async def aget_or_load() -> None:
    cache: ConcurrentCache[str, bytes] = ConcurrentCache(16)

    async def load(key: str) -> bytes:
        return key.encode()

    assert_type(await cache.aget_or_load("k", load), bytes)
    assert_type(await cache.aget_or_load("k", load, timeout=1.0), bytes)
    await cache.aget_or_load("k", lambda key: key)  # type: ignore[arg-type, return-value]  # pyright: ignore[reportArgumentType]
