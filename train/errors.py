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


# While held, a SIGTERM is noted instead of raised (see hold_termination).
_TERMINATION = {"held": False, "pending": False}


def terminate(signum, frame) -> None:
    """The SIGTERM handler `stance` installs: raise :class:`Terminated`, or note it while held."""
    if _TERMINATION["held"]:
        _TERMINATION["pending"] = True
        return
    raise Terminated()


def hold_termination() -> None:
    """Note a SIGTERM instead of raising it until :func:`release_termination`.

    Masking the signal in the main thread is not enough: the kernel may hand it to any other
    thread (a progress bar's, a model's hashing), and Python then runs the handler in the main
    thread all the same."""
    _TERMINATION["held"] = True


def release_termination() -> None:
    """Stop holding; a SIGTERM that arrived meanwhile is raised now."""
    _TERMINATION["held"] = False
    if _TERMINATION["pending"]:
        _TERMINATION["pending"] = False
        raise Terminated()
