"""The ``MISSING`` sentinel: "no value", distinct from ``None``."""

from __future__ import annotations

import enum
from typing import Final, Literal


class _MissingType(enum.Enum):
    """Type of :data:`MISSING`; a one-member enum so type checkers can narrow it."""

    MISSING = "MISSING"

    def __repr__(self) -> str:
        return "conctools.MISSING"

    def __bool__(self) -> Literal[False]:
        return False

    def __reduce__(self) -> str:
        return "MISSING"


MISSING: Final = _MissingType.MISSING
"""Marks an absent value (an absent key, "delete this mapping"). Falsy, compares
by identity, survives pickling as the same object."""

MissingType = Literal[_MissingType.MISSING]
