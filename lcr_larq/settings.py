"""Settings as dataclasses: one machinery for every command's flags, recipes and checks.

Every command's settings are a dataclass whose fields are made with
:func:`setting`. The same field is

* a command-line flag (``lcr_lambda`` → ``--lcr-lambda``); a list-valued flag
  takes its values as ``a b`` or ``a,b`` alike;
* a key of a YAML recipe (``--config FILE``; flags given on the command line
  override it; :func:`save_recipe` writes one that ``--config`` reads back;
  a key given twice is refused);
* a checked value: its type (``int``, ``float``, ``str``, ``bool``, optional,
  or a tuple of them), its choices (a tuple, or a :class:`~lcr_larq.registry.Registry`
  read when checked) and its range; every float must be finite.

A bad value ends in a :class:`~lcr_larq.errors.ConfigError` whose one-line
message names the flag (or the recipe key) and what it accepts, echoing at
most :data:`ECHO_LIMIT` characters of what it got. This module imports no
TensorFlow: the settings of a training run live with training
(:mod:`lcr_larq.training.config`), every other command's beside its code.

Example:
    >>> @dataclass
    ... class Example:
    ...     rate: float = setting(0.5, "a rate", above=0, below=1)
    ...     names: tuple[str, ...] = setting(("a",), "names", choices=("a", "b"))
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser, Example)
    >>> build_config(parser.parse_args(split_lists(["--names", "a,b"], parser)), Example)
    Example(rate=0.5, names=('a', 'b'))
    >>> validate(Example(rate=2.0))
    Traceback (most recent call last):
    ...
    lcr_larq.errors.ConfigError: --rate must be < 1, got 2
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import os
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from lcr_larq.errors import ConfigError

__all__ = [
    "ECHO_LIMIT",
    "Settings",
    "add_arguments",
    "build_config",
    "check_fields",
    "echo",
    "load_recipe",
    "recipe_dict",
    "recipe_fields",
    "save_recipe",
    "setting",
    "split_lists",
    "validate",
]

#: The most characters of a user's value that an error repeats.
ECHO_LIMIT = 100


def echo(value: Any, limit: int = ECHO_LIMIT) -> str:
    """``repr(value)`` for an error message, cut to ``limit`` characters.

    The value may be huge (a recipe's nested YAML aliases stand for gigabytes
    of text): only as much of it as the message shows is ever formatted.

    Example (``nested`` shares its halves, as YAML aliases do: it stands
    for 2⁶⁰ numbers in a few hundred bytes):
        >>> nested = [1, 2]
        >>> for _ in range(60):
        ...     nested = [nested, nested]
        >>> echo("x" * 500)[-4:], echo(nested, limit=20)
        ('xxx…', '[[[[[[[[[[[[[[[[[[[…')
    """
    text = _bounded_repr(value, limit + 1)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _bounded_repr(value: Any, budget: int) -> str:
    """The first ``budget`` characters (or a few more) of ``repr(value)``,
    formatting nested containers only as far as they are shown."""
    if isinstance(value, list | tuple):
        opening, closing = ("[", "]") if isinstance(value, list) else ("(", ")")
        text = opening
        for index, item in enumerate(value):
            if len(text) >= budget:
                return text
            text += (", " if index else "") + _bounded_repr(item, budget - len(text))
        return text + closing
    if isinstance(value, dict):
        return "{…}" if value else "{}"
    text = repr(value)
    return text[: budget + 1]


def setting(
    default: Any,
    help: str | Callable[[], str],  # noqa: A002
    *,
    choices: Sequence | None = None,
    low: float | None = None,
    above: float | None = None,
    high: float | None = None,
    below: float | None = None,
    recipe: bool = True,
    metavar: str | tuple[str, ...] | None = None,
    repeat: bool = False,
):
    """A settings field: its default, its ``--help`` text and what it accepts.

    Args:
        help: the text, or a function that makes it when ``--help`` is built
            (e.g. from a registry that may still grow).
        choices: the values allowed: a tuple, or a registry (names registered
            later are allowed too).
        low, above: the smallest value allowed, or the bound it must exceed.
        high, below: the largest value allowed, or the bound it must stay under.
        recipe: ``False`` for a setting of the command, not of the run
            (e.g. ``--overwrite``): it is never written to or read from a recipe.
        metavar: the flag's value name(s) in ``--help``.
        repeat: a sequence setting whose flag may be given several times
            (``--vary a=1,2 --vary b=3,4``), each adding one value as it is
            (no splitting at commas).
    """
    meta = dict(help=help, choices=choices, low=low, above=above, high=high, below=below,
                recipe=recipe, metavar=metavar, repeat=repeat)
    if isinstance(default, list | dict | set):
        raise TypeError("use a tuple default for a sequence setting")
    return field(default=default, metadata=meta)


# --------------------------------------------------------------------------- types
@dataclass(frozen=True)
class Kind:
    """The type of a setting: a scalar ``base`` type, whether None is
    allowed, and for tuples their length (``None``: one or more)."""

    base: type
    optional: bool = False
    sequence: bool = False
    length: int | None = None

    @property
    def noun(self) -> str:
        noun = {bool: "true or false", int: "a whole number", float: "a finite number",
                str: "a text"}[self.base]
        if self.sequence:
            count = f"{self.length}" if self.length else "one or more"
            noun = f"{count} values, each {noun}"
        return noun + (" or null" if self.optional else "")


def _kind(annotation: Any) -> Kind:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        inner = _kind(args[0])
        return dataclasses.replace(inner, optional=True)
    if origin is tuple:
        args = typing.get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis:
            return Kind(args[0], sequence=True)
        return Kind(args[0], sequence=True, length=len(args))
    if annotation in (bool, int, float, str):
        return Kind(annotation)
    raise TypeError(f"unsupported setting type {annotation!r}")


@functools.cache
def kinds(cls) -> dict[str, Kind]:
    """``{field name: Kind}`` of a settings dataclass."""
    hints = typing.get_type_hints(cls)
    return {f.name: _kind(hints[f.name]) for f in dataclasses.fields(cls)}


def flag_name(name: str) -> str:
    """``lcr_lambda`` → ``--lcr-lambda``."""
    return "--" + name.replace("_", "-")


def parse_bool(text: str) -> bool:
    lowered = str(text).lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


def _scalar_from_text(base: type, text: str):
    if base is bool:
        return parse_bool(text)
    if base is int:
        return int(text)
    if base is float:
        return float(text)
    return text


def _scalar_from_yaml(base: type, value):
    """A recipe's value as ``base``, strictly: YAML ``true`` is no number and
    ``1`` no text."""
    if base is bool:
        if isinstance(value, bool):
            return value
    elif base is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer() and math.isfinite(value):
            return int(value)
    elif base is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML reads 1e-4 (no dot) as text
            return float(value)
    elif isinstance(value, str):
        return value
    raise ValueError(value)


def convert(kind: Kind, value, from_text: bool):
    """``value`` (a flag's text, or a recipe's YAML value) as ``kind``; raises
    ``ValueError`` when it is none. A recipe's text ``"a,b"`` for a list
    setting is the list ``a, b``, as on the command line."""
    scalar = _scalar_from_text if from_text else _scalar_from_yaml
    if value is None:
        if kind.optional:
            return None
        raise ValueError(value)
    if kind.sequence:
        if isinstance(value, str) and not from_text:
            value = [part.strip() for part in value.split(",")]
        values = value if isinstance(value, list | tuple) else [value]
        if not values or (kind.length and len(values) != kind.length):
            raise ValueError(value)
        return tuple(scalar(kind.base, v) for v in values)
    if isinstance(value, list | tuple):
        raise ValueError(value)
    return scalar(kind.base, value)


# --------------------------------------------------------------------------- checks
def _check(name: str, f: dataclasses.Field, kind: Kind, value, where: str) -> None:
    meta = f.metadata
    what = where or flag_name(name)
    if value is None:
        if not kind.optional:
            raise ConfigError(f"{what} needs {kind.noun}, got null")
        return
    values = value if kind.sequence else (value,)
    if kind.sequence and (not values or (kind.length and len(values) != kind.length)):
        raise ConfigError(f"{what} needs {kind.noun}, got {echo(list(values))}")
    for v in values:
        _check_one(what, meta, kind, v)


def _check_one(what: str, meta, kind: Kind, v) -> None:
    wrong_type = not isinstance(v, kind.base) or (kind.base is not bool and isinstance(v, bool))
    if kind.base is float and isinstance(v, int) and not isinstance(v, bool):
        wrong_type = False
    if wrong_type:
        raise ConfigError(f"{what} needs {kind.noun}, got {echo(v)}")
    if kind.base is float and not math.isfinite(v):
        raise ConfigError(f"{what} must be a finite number, got {v}")
    if kind.base is str and not v.strip():
        # An empty path would silently become the default one.
        raise ConfigError(f"{what} is empty: give a value, or leave it out for the default")
    choices = meta.get("choices")
    if choices is not None and v not in choices:
        kind_of = getattr(choices, "kind", None)  # a registry names its kind of names
        if kind_of:
            raise ConfigError(f"{what}: unknown {kind_of} {echo(v)}; choose one of: "
                              f"{', '.join(map(str, choices))}")
        raise ConfigError(f"{what} must be one of {list(choices)}, got {echo(v)}")
    if meta.get("low") is not None and v < meta["low"]:
        raise ConfigError(f"{what} must be >= {_shown(meta['low'])}, got {_shown(v)}")
    if meta.get("above") is not None and v <= meta["above"]:
        raise ConfigError(f"{what} must be > {_shown(meta['above'])}, got {_shown(v)}")
    if meta.get("high") is not None and v > meta["high"]:
        raise ConfigError(f"{what} must be <= {_shown(meta['high'])}, got {_shown(v)}")
    if meta.get("below") is not None and v >= meta["below"]:
        raise ConfigError(f"{what} must be < {_shown(meta['below'])}, got {_shown(v)}")


def check_fields(config) -> None:
    """Checks every field of a settings dataclass against its type, choices
    and range; raises :class:`ConfigError` naming the flag."""
    field_kinds = kinds(type(config))
    for f in dataclasses.fields(config):
        _check(f.name, f, field_kinds[f.name], getattr(config, f.name), "")


def validate(config):
    """Checks every setting of ``config`` (its fields, then its own
    ``check()`` for rules between settings); returns it."""
    check_fields(config)
    check = getattr(config, "check", None)
    if check is not None:
        check()
    return config


def _shown(value) -> str:
    """A bound or value in an error: whole numbers in full, floats short."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**ECHO_LIMIT:
        return str(value)
    return f"{value:g}" if isinstance(value, float) else echo(value)


class Settings:
    """The base of every settings dataclass: an instance is checked when it is
    made (:func:`validate`), from flags, a recipe or a library caller alike,
    so code that holds one never checks it again."""

    def __post_init__(self) -> None:
        validate(self)

    def check(self) -> None:
        """Rules between settings (each setting alone is checked by its field)."""


# --------------------------------------------------------------------------- flags
def add_arguments(parser: argparse.ArgumentParser, cls, exclude: tuple[str, ...] = ()) -> None:
    """Adds ``--config`` and one ``--flag`` per field of the settings
    dataclass ``cls`` (defaults are left to the dataclass, so a flag not
    given does not override a recipe). The flags of list settings are noted
    on the parser for :func:`split_lists`."""
    parser.add_argument("--config", metavar="FILE",
                        help="YAML recipe; flags given here override it")
    field_kinds = kinds(cls)
    lists = getattr(parser, "list_flags", set())
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        kind = field_kinds[f.name]
        options, text = _flag_options(f, kind)
        if kind.sequence and not f.metadata.get("repeat"):
            lists.add(flag_name(f.name))
        parser.add_argument(flag_name(f.name), help=text, **options)
    parser.list_flags = lists


def _flag_options(f: dataclasses.Field, kind: Kind) -> tuple[dict[str, Any], str]:
    """argparse's options and the help text of one setting's flag."""
    meta = f.metadata
    options: dict[str, Any] = {"default": argparse.SUPPRESS, "dest": f.name,
                               "type": _flag_type(f.name, kind)}
    text = meta["help"]() if callable(meta["help"]) else meta["help"]
    if kind.base is bool and not kind.sequence:
        options.update(nargs="?", const=True, metavar="true|false")
        return options, text
    if kind.sequence:
        options["nargs"] = kind.length or "+"
        if meta.get("repeat"):
            options["action"] = "extend"
    if meta.get("metavar"):
        options["metavar"] = meta["metavar"]
    elif meta.get("choices") is not None and not kind.sequence:
        options["metavar"] = "{" + ",".join(map(str, meta["choices"])) + "}"
    default = f.default
    # None means "derived" and a help text naming its default says it better.
    if default is not None and "default" not in text:
        shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
        text = f"{text} (default: {shown})"
    return options, text


def _flag_type(name: str, kind: Kind):
    scalar = Kind(kind.base)

    def parse(text: str):
        try:
            return convert(scalar, text, from_text=True)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{flag_name(name)} needs {scalar.noun}, got {echo(text)}"
            ) from None

    parse.__name__ = kind.base.__name__
    return parse


def split_lists(argv: Sequence[str], parser: argparse.ArgumentParser) -> list[str]:
    """``argv`` with the values of the parser's list flags split at commas:
    ``--severities 1,3 5`` is ``--severities 1 3 5``.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> parser.list_flags = {"--names"}
        >>> split_lists(["--names", "a,b", "c", "--other", "x,y", "--names=d,e"], parser)
        ['--names', 'a', 'b', 'c', '--other', 'x,y', '--names', 'd', 'e']
    """
    lists = getattr(parser, "list_flags", set())
    out: list[str] = []
    in_list = False
    for token in argv:
        if token.startswith("--"):
            flag, equals, value = token.partition("=")
            in_list = flag in lists
            if not (in_list and equals):
                out.append(token)
                continue
            out.append(flag)
            token = value
        if in_list:
            out.extend(part for part in token.split(",") if part)
        else:
            out.append(token)
    return out


def expand_names(parts, groups: dict[str, tuple[str, ...]], names, noun: str) -> list[str]:
    """The names a list option stands for: each part a name of ``names`` or
    a group of ``groups`` (such as ``all``), in order, each name once.

    Example:
        >>> expand_names(["b", "odd", "c"], {"odd": ("a", "c")}, "abc", "letter")
        ['b', 'a', 'c']
    """
    out: list[str] = []
    for part in parts:
        if part not in groups and part not in names:
            raise ConfigError(f"unknown {noun} {echo(part)}; choose {', '.join(groups)} or "
                              f"names from {', '.join(names)}")
        out.extend(n for n in groups.get(part, (part,)) if n not in out)
    return out


# --------------------------------------------------------------------------- recipes
class _RecipeLoader(yaml.SafeLoader):
    """YAML's safe loader that refuses a key given twice in one mapping (YAML
    itself takes the last one silently)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.setdefault(key, line)
            except TypeError:  # an unhashable key: the base class says so
                break
            if first != line:
                raise ConfigError(
                    f"{self.name}: key {echo(key)} is given twice (lines {first} and {line}): "
                    "keep one"
                )
        return super().construct_mapping(node, deep=deep)


def recipe_fields(cls) -> list[dataclasses.Field]:
    """The fields of ``cls`` that belong in a recipe."""
    return [f for f in dataclasses.fields(cls) if f.metadata.get("recipe", True)]


def _read_yaml(path: str) -> Any:
    """The YAML of a recipe file; one-line errors for a file that is missing,
    unreadable, not UTF-8, not YAML, or holds a key twice."""
    if not os.path.isfile(path):
        raise ConfigError(f"--config {path} does not exist")
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text: give a YAML recipe") from None
    except OSError as error:
        raise ConfigError(f"cannot read {path} ({error.strerror})") from None
    loader = _RecipeLoader(text)
    loader.name = path
    try:
        return loader.get_single_data()
    except yaml.YAMLError as error:
        raise ConfigError(
            f"{path} is not valid YAML: {echo(str(error).splitlines()[0])}"
        ) from None
    finally:
        loader.dispose()


def load_recipe(path: str, cls) -> dict[str, Any]:
    """A YAML recipe's settings for the settings dataclass ``cls``, each of
    its type; unknown keys, keys given twice, values of the wrong type and
    files that are not YAML text are refused."""
    values = _read_yaml(path) or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path} must hold a mapping of settings")
    fields = {f.name: f for f in recipe_fields(cls)}
    field_kinds = kinds(cls)
    recipe = {}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name not in fields:
            raise ConfigError(
                f"{path}: unknown key {echo(key)}; valid keys: {sorted(fields)}"
            )
        kind = field_kinds[name]
        try:
            recipe[name] = convert(kind, value, from_text=False)
        except (ValueError, TypeError, OverflowError):
            raise ConfigError(
                f"{path}: key {name!r} needs {kind.noun}, got {echo(value)}"
            ) from None
        _check(name, fields[name], kind, recipe[name], f"{path}: key {name!r}")
    return recipe


def build_config(namespace: argparse.Namespace, cls):
    """The settings of parsed flags: defaults, then the recipe, then the flags."""
    values = {}
    if getattr(namespace, "config", None):
        values.update(load_recipe(namespace.config, cls))
    names = {f.name for f in dataclasses.fields(cls)}
    values.update({
        k: tuple(v) if isinstance(v, list) else v
        for k, v in vars(namespace).items() if k in names
    })
    return cls(**values)


def given_flags(namespace: argparse.Namespace, cls) -> set[str]:
    """The fields of ``cls`` set on the command line."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k for k in vars(namespace) if k in names}


def save_recipe(config, path: str) -> None:
    """Writes ``config``'s recipe settings as YAML that ``--config`` reads back."""
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(recipe_dict(config), handle, sort_keys=False, allow_unicode=True)


def recipe_dict(config) -> dict[str, Any]:
    """``config``'s recipe settings as a dict (tuples as lists, as in YAML)."""
    return {
        f.name: list(v) if isinstance(v := getattr(config, f.name), tuple) else v
        for f in recipe_fields(type(config))
    }
