"""The name to install the package by (the import name stays ``conctools``)."""

from __future__ import annotations

__all__ = ["DISTRIBUTION", "install_hint"]

#: The distribution name on the package index.  ``conctools`` there is an
#: unrelated project, so the distribution is ``conctools-ft``; the import name
#: is ``conctools``.
DISTRIBUTION = "conctools-ft"


def install_hint(extra: str) -> str:
    """The pip command that installs this package with ``extra``."""
    return f"pip install '{DISTRIBUTION}[{extra}]'"
