"""Errors a user can fix. The CLI prints them without a traceback and exits with status 2."""


class StanceError(Exception):
    """Base class: the message says what was expected, what was found and the fix."""


class ConfigError(StanceError):
    """The experiment file or an override is wrong."""


class DataError(StanceError):
    """A data file is missing, unreadable or holds rows that fail validation."""


class ModelError(StanceError):
    """A model could not be loaded, or is not a stance model."""


class TrackingError(StanceError):
    """The MLflow tracking store cannot be opened, or refused a request."""


class Terminated(KeyboardInterrupt):
    """The process was asked to stop (SIGTERM). A KeyboardInterrupt, so that it unwinds
    everything an interrupt does: the open run is marked KILLED, temporary files go."""
