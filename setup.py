"""Packaging; the metadata lives in setup.cfg.

The console scripts come from the commands' folder: every module of
``lcr_larq/cli/`` (but ``_private`` ones) is the command ``lcr-<name>``, the
same list that :func:`lcr_larq.cli.commands` reads.
"""

from pathlib import Path

from setuptools import setup

COMMANDS = sorted(
    path.stem for path in (Path(__file__).parent / "lcr_larq" / "cli").glob("*.py")
    if not path.stem.startswith("_")
)

setup(entry_points={
    "console_scripts": [f"lcr-{name} = lcr_larq.cli.{name}:main" for name in COMMANDS],
})
