"""Internals shared by several primitives. Not public API."""
