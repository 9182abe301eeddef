"""Errors of the store; every message says what happened, where, and what to do."""

from __future__ import annotations


class StoreError(Exception):
    """A store operation failed; the message says what and where."""


class StoreTooNewError(StoreError):
    """The store was written by a newer busviewer (a schema revision this version lacks)."""


class StaleEditError(StoreError):
    """An edit was based on an old version of the object: refused, nothing was saved."""
