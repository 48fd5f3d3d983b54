"""Exceptions whose message is meant to be shown to a user as is (CLI and app print `str(error)`)."""

from __future__ import annotations

from hub_models.loading import ModelLoadError as _ResolverError


class WorkbenchError(ValueError):
    """Base of every error the workbench raises on purpose: bad input, not a bug."""


class ImageError(WorkbenchError):
    """The input could not be turned into an RGB image (unreadable, too small, too large…)."""


class ModelLoadError(WorkbenchError, _ResolverError):
    """A model spec could not be loaded (unknown name, offline Hub id, broken folder)."""


class ArgumentError(WorkbenchError):
    """A request argument (target, methods, max_faces…) is invalid; checked before any work,
    the message lists what is accepted."""


class BundleError(WorkbenchError):
    """A bundle could not be written (its folder is a file, a path is too long, the disk is full…)."""


class BundleExistsError(BundleError, FileExistsError):
    """`save` would overwrite an existing, non-empty bundle directory, or a file is in its place."""
