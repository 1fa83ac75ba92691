"""The command line of lcr-larq: one shell for every command.

Each command is a module of this package, ``lcr_larq/cli/<name>.py``, over
functions that return data, and is installed as the console script
``lcr-<name>`` (also ``python -m lcr_larq.cli.<name>``): the modules of this
folder are the one list of commands (:func:`commands`), which the packaging,
every command's ``--help`` and the tests read. A new command is one new file
here. The shell gives them the same behaviour:

* flags from a settings dataclass (:mod:`lcr_larq.settings`: flags,
  ``--config`` recipes, checks; list flags take ``a b`` or ``a,b``), with
  argparse's errors on one line (no usage block);
* every :class:`~lcr_larq.errors.UserError` as one line ``error: …`` and exit
  code 2 (a full disk too, naming it, and a user's own ``models`` package
  found in place of the architectures), Ctrl-C as one line and exit code 130;
* a command started by a study's worker ends when the worker ends
  (:func:`~lcr_larq.experiments.claims.end_with_parent`);
* output that never fails on the terminal's encoding: where it cannot show
  a character (``σ``, ``λ``, ``×``…) it is spelled in ASCII (``sigma``);
* text tables (terminaltables, as Larq's model summary) and reports written
  as standard JSON.

Example:
    >>> print(table([["a", 1.5], ["b", None]], ["name", "value"]))
    +------+-------+
    | name | value |
    +------+-------+
    | a    | 1.5   |
    | b    | -     |
    +------+-------+
"""

from __future__ import annotations

import argparse
import codecs
import os
import pkgutil
import re
import sys
import textwrap
from collections.abc import Callable, Sequence
from typing import Any

from terminaltables import AsciiTable

from lcr_larq.errors import ShadowedPackageError, UserError, no_space_left
from lcr_larq.experiments import claims
from lcr_larq.settings import add_arguments, build_config, split_lists

try:
    from lcr_larq.training import runs
except ShadowedPackageError as error:
    # The tools refuse a user's own ``models`` found first (before any command
    # runs: lcr_larq.training.architectures): a command says so in its one line.
    print(f"error: {error}", file=sys.stderr)
    raise SystemExit(2) from None

__all__ = [
    "ASCII_SPELLINGS",
    "OUTPUT_ERRORS",
    "Parser",
    "beside",
    "cell",
    "command",
    "command_line",
    "commands",
    "parser",
    "present",
    "printable",
    "progress",
    "run",
    "safe_output",
    "save_report",
    "settings_from",
    "table",
    "wrote",
]

#: How the commands' non-ASCII characters read where the output cannot show them.
ASCII_SPELLINGS = {
    "σ": "sigma", "λ": "lambda", "β": "beta", "ρ": "rho", "ε": "eps", "×": "x", "…": "...",
    "—": "--", "–": "-", "→": "->", "≥": ">=", "≤": "<=", "±": "+/-", "·": "*", "≈": "~",
    "²": "^2", "√": "sqrt", "∞": "inf", "°": " deg",
}
OUTPUT_ERRORS = "lcr-larq-ascii"


def _ascii_spelling(error: UnicodeEncodeError) -> tuple[str, int]:
    text = error.object[error.start:error.end]
    return "".join(ASCII_SPELLINGS.get(char, "?") for char in text), error.end


def printable(text: str) -> str:
    """``text`` as standard output shows it (spelled in ASCII where its
    encoding cannot show a character), so that tables measure what is shown.

    Example:
        >>> printable("σ ratio") in ("σ ratio", "sigma ratio")
        True
    """
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    return text.encode(encoding, errors=OUTPUT_ERRORS).decode(encoding)


codecs.register_error(OUTPUT_ERRORS, _ascii_spelling)


def safe_output(*streams) -> None:
    """Makes ``streams`` (default: stdout and stderr) spell what their encoding
    cannot show in ASCII instead of raising ``UnicodeEncodeError``.

    Example:
        >>> import io
        >>> out = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
        >>> safe_output(out)
        >>> _ = out.write("σ_B/σ_F 0.92, λ=4 (1 step in 2, weight ×2)")
        >>> out.flush(); out.buffer.getvalue().decode()
        'sigma_B/sigma_F 0.92, lambda=4 (1 step in 2, weight x2)'
    """
    for stream in streams or (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors=OUTPUT_ERRORS)


def commands() -> list[str]:
    """The commands: one module of this package each, ``lcr-<name>``.

    Example:
        >>> commands()
        ['diagnose', 'evaluate', 'export', 'plots', 'study', 'train', 'tune']
    """
    return sorted(info.name for info in pkgutil.iter_modules(__path__)
                  if not info.name.startswith("_"))


class _HelpFormatter(argparse.HelpFormatter):
    """Wraps help texts without breaking ``--flag-names`` at their hyphens.

    argparse documents only its formatter classes; ``_split_lines`` is the
    method they all use to wrap, and textwrap breaks on hyphens by default.
    """

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class Parser(argparse.ArgumentParser):
    """``ArgumentParser`` whose errors are one line, like every other error,
    and whose list flags take ``a,b`` as ``a b`` (:func:`lcr_larq.settings.split_lists`)."""

    def error(self, message: str):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        return super().parse_known_args(split_lists(args, self), namespace)


def parser(prog: str, description: str, settings=None, exclude: tuple[str, ...] = ()) -> Parser:
    """A command's parser, with one flag per field of ``settings`` (a
    settings dataclass, see :mod:`lcr_larq.settings`); its help ends with the
    other commands. Its output never fails on the terminal's encoding
    (:func:`safe_output`)."""
    safe_output()
    others = ", ".join(f"lcr-{name}" for name in commands() if f"lcr-{name}" != prog)
    result = Parser(prog=prog, description=description, allow_abbrev=False,
                    formatter_class=_HelpFormatter, epilog=f"other commands: {others}")
    if settings is not None:
        add_arguments(result, settings, exclude)
    return result


def settings_from(namespace: argparse.Namespace, settings):
    """The settings of parsed flags (defaults < recipe < flags), checked as
    they are made."""
    return build_config(namespace, settings)


def run(
    body: Callable[[], int | None],
    interrupted: str = "interrupted",
) -> int:
    """Runs a command's ``body``; returns its exit code (0 when it returns
    None). A :class:`~lcr_larq.errors.UserError` prints ``error: …`` on one
    line (exit code 2); Ctrl-C prints ``interrupted`` (exit code 130)."""
    try:
        code = body()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        if not no_space_left(error):
            raise
        where = f" writing {error.filename}" if error.filename else ""
        print(f"error: no space left on the device{where}: free some and rerun", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\n{interrupted}", file=sys.stderr)
        return 130
    return 0 if code is None else int(code)


def command(
    settings,
    body: Callable[[Any], int | None],
    doc: str,
    interrupted: str = "interrupted",
    exclude: tuple[str, ...] = (),
) -> Callable[[Sequence[str] | None], int]:
    """A command's ``main(argv) -> exit code``: flags of the settings dataclass
    ``settings``, then ``body(validated settings)`` under :func:`run`.

    ``main.settings`` is the settings dataclass (what the tests read).
    ``doc`` is the command module's docstring; its first line,
    "``lcr-name``: what it does" (the name in double backquotes), gives the program name and the
    description of ``--help``.
    """
    prog, description = command_line(doc)

    def main(argv: Sequence[str] | None = None) -> int:
        claims.end_with_parent()  # started by a study's worker: end with it
        args = parser(prog, description, settings, exclude).parse_args(argv)
        return run(lambda: body(settings_from(args, settings)), interrupted)

    main.__doc__ = f"``{prog}``: {description}"
    main.settings = settings
    return main


def command_line(doc: str) -> tuple[str, str]:
    """The program name and description in the first line of a command's docstring.

    Example:
        >>> command_line("``lcr-export``: a trained BNN as a flatbuffer.\\n\\nMore.")
        ('lcr-export', 'A trained BNN as a flatbuffer.')
    """
    match = re.match(r"``([\w.-]+)``(?: \(also [^)]*\))?: (.+)", doc.strip().splitlines()[0])
    if not match:
        raise ValueError(f"a command's docstring starts with ``prog``: description, not {doc!r}")
    prog, description = match.groups()
    return prog, description[0].upper() + description[1:]


def save_report(report: dict, path: str, flag: str = "--output") -> str:
    """Writes ``report`` as standard JSON to ``path``; a path that cannot be
    written is a one-line error naming ``flag``."""
    try:
        runs.save_json(report, path)
    except OSError as error:
        raise UserError(f"cannot write {path} ({error.strerror}): check {flag}") from None
    return path


def beside(path: str, name: str) -> str:
    """The file ``name`` in the directory of ``path``."""
    return os.path.join(os.path.dirname(os.path.abspath(path)), name)


def progress(quiet: bool = False) -> Callable[[str], None] | None:
    """A printer of progress lines, or None when ``quiet``."""
    if quiet:
        return None
    return lambda line: print(line, flush=True)


def cell(value: Any, digits: int = 4) -> str:
    """A table cell: ``-`` for None, floats rounded, everything else as text."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e5 else f"{value:.0f}"
    return str(value)


def table(
    rows: Sequence[Sequence[Any]], header: Sequence[str] | None = None, title: str | None = None
) -> str:
    """``rows`` under ``header`` (none: a table of name, value rows) as a text
    table (terminaltables, as Larq's model summary)."""
    data = [[printable(cell(v)) for v in row] for row in rows]
    if header is not None:
        data.insert(0, [printable(str(h)) for h in header])
    result = AsciiTable(data, title and printable(title))
    result.inner_heading_row_border = header is not None
    return result.table


def present(
    report: dict, path: str, text: str, plot: Callable[[], str | list[str]] | None = None
) -> None:
    """The end of a command that measures: ``report`` saved as JSON to
    ``path``, ``text`` printed, the figures drawn by ``plot`` (which returns
    their path or paths; None draws none), then where each output went."""
    written = [save_report(report, path)]
    print()
    print(text)
    if plot is not None:
        drawn = plot()
        written.extend([drawn] if isinstance(drawn, str) else drawn)
    print()
    wrote(*written)


def wrote(*paths: str) -> None:
    """Tells where a command's outputs went."""
    for path in paths:
        print(f"wrote {path}")
