"""Errors a user can act on: each carries one line saying what is wrong and how to fix it."""


class FarmError(Exception):
    """Base of every error the CLI turns into one clear line and a non-zero exit."""


class MatrixError(FarmError):
    """The matrix file is malformed or names something Farm cannot run."""


class ServiceUnavailable(FarmError):
    """Redis or the database cannot be reached."""


class NotFound(FarmError):
    """A campaign, job or worker that does not exist."""


class BackendUnavailable(FarmError):
    """A backend cannot load in this Python environment (missing package or feature)."""


class ModelResolutionError(FarmError):
    """A model name resolves to nothing loadable offline."""
