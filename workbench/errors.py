"""Exceptions whose message is meant to be shown to a user as is (CLI and app print `str(error)`)."""

from __future__ import annotations


class WorkbenchError(ValueError):
    """Base of every error the workbench raises on purpose: bad input, not a bug."""


class ImageError(WorkbenchError):
    """The input could not be turned into an RGB image (unreadable, too small, too large…)."""


class ModelLoadError(WorkbenchError):
    """A model spec could not be loaded (unknown name, offline Hub id, broken folder)."""


class BundleExistsError(WorkbenchError, FileExistsError):
    """`save` would overwrite an existing, non-empty bundle directory."""
