"""The errors a user fixes: every command prints one as a single line.

* :class:`UserError` — the base: bad input whose message names the fix.
* :class:`ConfigError` — a bad setting (a flag, a recipe key, an option).
* :class:`DataError` — a dataset that cannot be loaded as asked.
* :class:`RunError` — a run that cannot go on, or a run directory or model
  that cannot be used (missing, corrupt, from other settings, diverged).
* :class:`ShadowedPackageError` — a package of lcr-larq's that Python finds
  elsewhere first (a user's own ``models`` folder): raised on import.

:func:`no_space_left` tells a full disk from other failures to write.

Example:
    >>> issubclass(ConfigError, UserError) and issubclass(RunError, UserError)
    True
"""

from __future__ import annotations

import errno

__all__ = [
    "ConfigError",
    "DataError",
    "RunError",
    "ShadowedPackageError",
    "UserError",
    "no_space_left",
]


class UserError(ValueError):
    """Bad input; the message says what is wrong and how to fix it."""


class ConfigError(UserError):
    """Bad settings; the message names the flag or recipe key."""


class DataError(UserError):
    """A dataset that cannot be loaded as asked; the message names the fix."""


class RunError(UserError):
    """A run, run directory or model that cannot be used; the message names the fix."""


class ShadowedPackageError(UserError, ImportError):
    """``import`` would find another package under the name of one of
    lcr-larq's (``models``); the message names it and the fix. An ImportError,
    raised when the tools are imported; the commands print it as one line."""


def no_space_left(error: BaseException) -> bool:
    """Whether ``error`` is a full disk: an ``OSError`` with ``ENOSPC``, or
    TensorFlow's ``ResourceExhaustedError`` of a write, which says so only
    in its message (it raises that class for a full disk and for a full
    memory alike).

    Example:
        >>> no_space_left(OSError(28, "No space left on device")), no_space_left(MemoryError())
        (True, False)
    """
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return True
    return "No space left on device" in str(error)
