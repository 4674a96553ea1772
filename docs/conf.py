"""Sphinx configuration for conctools."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "_ext"))

import conctools

project = "conctools"
author = "conctools developers"
copyright = "2026, conctools developers"
release = conctools.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
    "sphinx_copybutton",
    "benchdata",
]
html_theme = "furo"
html_title = f"conctools {release}"
html_static_path = ["_static"]
templates_path: list[str] = []
exclude_patterns = ["_build"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
nitpicky = False
doctest_global_setup = "import conctools"
suppress_warnings = ["config.cache"]
html_css_files = ["conctools.css"]


def _public_bases(app: object, name: str, obj: object, options: object, bases: list[type]) -> None:
    """Leave private implementation bases (the pure-Python or native cores) out of
    the rendered class headers: they are not part of the API."""
    bases[:] = [b for b in bases if not b.__name__.startswith("_")]


def setup(app: object) -> None:
    app.connect("autodoc-process-bases", _public_bases)  # type: ignore[attr-defined]
