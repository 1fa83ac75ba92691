"""Two or more ways of doing one thing, timed in turns within one process.

Machine noise (another process, a CPU's clock) drifts over minutes, so the
ways take turns — A B A B … — and each way's figure is the median over its
turns. The first turn of each way is not counted: TensorFlow converts and
caches the layers' code once per process, and that lands on whichever way
runs first.

Example:
    >>> order = []
    >>> def measure(way):
    ...     order.append(way)
    ...     return (len(order), 10.0 * len(order))
    >>> alternate(("a", "b"), 2, measure)
    {'a': (4.0, 40.0), 'b': (5.0, 50.0)}
    >>> order
    ['a', 'b', 'a', 'b', 'a', 'b']
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence


def alternate(
    ways: Sequence[str], turns: int, measure: Callable[[str], tuple[float, ...]]
) -> dict[str, tuple[float, ...]]:
    """Each way's medians over ``turns`` counted turns of ``measure(way)`` (a
    tuple of figures), the ways taking turns after a warm-up turn of each."""
    times: dict[str, list[tuple[float, ...]]] = {way: [] for way in ways}
    for turn in range(turns + 1):
        for way in ways:
            measured = measure(way)
            if turn:  # the first turn warms the process up
                times[way].append(measured)
    return {
        way: tuple(statistics.median(column) for column in zip(*rows, strict=True))
        for way, rows in times.items()
    }
