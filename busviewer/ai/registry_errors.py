"""Error types of the model registry and of the weights-file checks it runs."""

from __future__ import annotations


class RegistryError(Exception):
    """Base class of registry errors."""


class ModelFileError(RegistryError):
    """A weights or card file is unusable; the message names the file and the problem."""


class ModelNotFoundError(RegistryError, LookupError):
    """No model with that name (and version)."""


class ModelProtectedError(RegistryError):
    """The operation is not allowed on this model (shipped or active)."""


__all__ = ["ModelFileError", "ModelNotFoundError", "ModelProtectedError", "RegistryError"]
