"""Registries: every user-facing list of names has one owner.

A :class:`Registry` holds the entries of one kind of name (weight quantizers,
datasets, models), each registered once, where it is defined, with a
decorator. Everything that offers a choice of that kind reads the registry:
a setting's ``choices``, a command's ``--help``, the error for an unknown
name. A new quantizer, dataset or model is one new file.

A registry is a live view: a setting made with ``choices=REGISTRY`` accepts a
name registered after the setting was defined (e.g. by a test or a user's
script), and :func:`import_submodules` imports every module of a package, so
that a file dropped into ``models/`` or ``lcr_larq/data/`` registers itself.

Example:
    >>> colors = Registry("color")
    >>> @colors.register("red")
    ... def red():
    ...     return "#f00"
    >>> "red" in colors, list(colors), colors["red"]()
    (True, ['red'], '#f00')
    >>> colors["blue"]
    Traceback (most recent call last):
    ...
    lcr_larq.errors.ConfigError: unknown color 'blue'; choose one of: red
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from lcr_larq.errors import ConfigError
from lcr_larq.settings import echo

__all__ = [
    "Registry",
    "import_submodules",
]

Entry = TypeVar("Entry")


class Registry(Generic[Entry]):
    """Names of one kind, each bound to its entry (a class, a function or a
    record), in the order they were registered; iterating gives the names,
    sorted."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str) -> Callable[[Entry], Entry]:
        """A decorator that registers its argument under ``name`` and returns
        it unchanged. A name is registered once."""

        def add(entry: Entry) -> Entry:
            self.add(name, entry)
            return entry

        return add

    def add(self, name: str, entry: Entry) -> None:
        """Registers ``entry`` under ``name``; a name taken already is refused."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered already")
        self._entries[name] = entry

    def remove(self, name: str) -> None:
        """Forgets ``name`` (e.g. a test's toy entry)."""
        del self._entries[name]

    def __getitem__(self, name: str) -> Entry:
        if name not in self._entries:
            raise ConfigError(
                f"unknown {self.kind} {echo(name)}; choose one of: {', '.join(self)}"
            )
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> list[tuple[str, Entry]]:
        """``(name, entry)`` pairs, sorted by name."""
        return [(name, self._entries[name]) for name in self]

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self)})"


def import_submodules(package: str) -> list[str]:
    """Imports every module of ``package`` (not its sub-packages), so that
    each registers what it defines; returns their names.

    Example:
        >>> "irnet" in import_submodules("lcr_larq.quantizers")
        True
    """
    path = importlib.import_module(package).__path__
    names = [info.name for info in pkgutil.iter_modules(path) if not info.ispkg]
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return names
