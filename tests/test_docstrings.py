"""Every public class opens its docstring with the same guarantees block.

Exception types are exempt: they describe an outcome, not shared state.
"""

from __future__ import annotations

import inspect

import pytest

import conctools
import conctools.testing

BLOCK = (
    "**Thread safety.**",
    "**Atomic operations.**",
    "**Iteration.**",
    "**Blocking and timeouts.**",
    "**Complexity.**",
)

PUBLIC_CLASSES = [
    pytest.param(obj, id=f"{mod.__name__}.{name}")
    for mod in (conctools, conctools.testing)
    for name in mod.__all__
    if inspect.isclass(obj := getattr(mod, name)) and not issubclass(obj, BaseException)
]


def test_the_list_is_not_empty() -> None:
    assert len(PUBLIC_CLASSES) >= 15


@pytest.mark.parametrize("cls", PUBLIC_CLASSES)
def test_docstring_opens_with_the_block(cls: type) -> None:
    doc = inspect.getdoc(cls) or ""
    positions = [doc.find(lead) for lead in BLOCK]
    assert all(p > 0 for p in positions), f"{cls.__name__} lacks {BLOCK[positions.index(-1)]}"
    assert positions == sorted(positions), f"{cls.__name__}: sections out of order"
    summary = doc[: positions[0]].strip()
    assert summary, f"{cls.__name__}: no summary before the block"
