"""The shared ending of the report commands (``evaluate``, ``diagnose``).

Example:
    >>> import os, tempfile
    >>> out = os.path.join(tempfile.mkdtemp(), "report.json")
    >>> finish_report("a table", out, None, "plot.png")  # doctest: +NORMALIZE_WHITESPACE
    <BLANKLINE>
    a table
    <BLANKLINE>
    wrote ...report.json
    0
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable


def fail(error: Exception) -> int:
    """Prints ``error`` as one line on stderr; returns the exit code 2.

    An ``OSError`` comes from writing the report, whose path ``--output`` sets.
    """
    if isinstance(error, OSError):
        message = f"cannot write the report ({error.strerror}): check --output"
    else:
        message = str(error)
    print(f"error: {message}", file=sys.stderr)
    return 2


def finish_report(
    table: str, output: str, plot: Callable[[str], None] | None, plot_file: str
) -> int:
    """Prints the report's table and where it went; draws ``plot_file`` beside
    ``output`` with ``plot(path)`` unless ``plot`` is None. Returns 0."""
    print()
    print(table)
    print(f"\nwrote {output}")
    if plot is not None:
        path = os.path.join(os.path.dirname(os.path.abspath(output)), plot_file)
        plot(path)
        print(f"wrote {path}")
    return 0
