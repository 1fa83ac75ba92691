"""The architectures as the tools reach them: the one module of lcr_larq that imports ``models``.

The design card's ``models`` package is installed beside ``lcr_larq`` under a
generic name, which a user's own ``models/`` folder (or ``models.py``) takes
when it comes first on ``sys.path`` — and ``python -m`` and ``python -c`` put
the current directory first. So before importing it, this module checks that
the ``models`` Python would find is lcr-larq's own, the package beside
``lcr_larq`` (:func:`models_problem`, which imports nothing to tell), and
refuses another one with one line naming it and the fix
(:class:`~lcr_larq.errors.ShadowedPackageError`, an ``ImportError``; the
commands print it as ``error: …``). A user's package is never run in place of
the architectures. The core needs no ``models``: ``import lcr_larq`` works
beside any.

Example:
    >>> "resnet20" in MODELS, MODELS["quicknet"].min_input_size
    (True, 64)
"""

from __future__ import annotations

import importlib.util
import os

from lcr_larq.errors import ShadowedPackageError

__all__ = [
    "MODELS",
    "OWN_MODELS",
    "build_model",
    "check_input_size",
    "models_problem",
]

#: Where lcr-larq's own ``models`` package is: beside ``lcr_larq`` (in a wheel's
#: site-packages, an editable install's checkout, a checkout on ``PYTHONPATH``).
OWN_MODELS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "models"
)


def _location(spec) -> str | None:
    """The folder of a package's spec, or the file of a module's."""
    if spec is None:
        return None
    if spec.submodule_search_locations is not None:
        if spec.origin and os.path.basename(spec.origin) == "__init__.py":
            return os.path.dirname(spec.origin)
        return next(iter(spec.submodule_search_locations), None)  # a namespace package
    return spec.origin


def models_problem() -> str | None:
    """Why ``import models`` would not give lcr-larq's architectures, in one
    line naming the fix; None when it would. Nothing is imported to tell
    (``importlib.util.find_spec`` only finds, or reads a module already loaded).

    Example:
        >>> models_problem() is None
        True
    """
    try:
        found = _location(importlib.util.find_spec("models"))
    except (ImportError, ValueError):  # a "models" in sys.modules without a spec
        found = None
    if found is not None and os.path.realpath(found) == os.path.realpath(OWN_MODELS):
        return None
    if found is None or not os.path.isfile(os.path.join(OWN_MODELS, "__init__.py")):
        return (f"lcr-larq's architectures, the package models, are not installed "
                f"(expected at {OWN_MODELS}): reinstall lcr-larq")
    return (f"{found} is found first as the package models, in place of lcr-larq's "
            f"architectures ({OWN_MODELS}): rename it, or run from a directory that does not "
            "hold it (python -m and python -c put the current directory first on sys.path)")


_PROBLEM = models_problem()
if _PROBLEM is not None:
    raise ShadowedPackageError(_PROBLEM)

from models import MODELS, build_model, check_input_size  # noqa: E402  (checked above)

