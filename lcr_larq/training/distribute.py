"""Training under ``tf.distribute``: the strategy of ``--strategy`` and which
process writes the run's files.

Example:
    >>> check_tf_config('{"cluster": {"worker": ["localhost:1"]}, "task": {"type": '
    ...                 '"worker", "index": 0}}')["task"]["index"]
    0
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from lcr_larq.errors import ConfigError

__all__ = [
    "STRATEGIES",
    "check_tf_config",
    "get_strategy",
    "is_chief",
]

#: ``--strategy``: one device, MirroredStrategy, or MultiWorkerMirroredStrategy.
STRATEGIES = ("default", "mirrored", "multiworker")


def get_strategy(name: str) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy of ``--strategy``; ``multiworker`` reads
    the cluster from ``TF_CONFIG``, checked first."""
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        check_tf_config(os.environ.get("TF_CONFIG"))
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def check_tf_config(text: str | None) -> dict:
    """``TF_CONFIG`` parsed; a :class:`~lcr_larq.errors.ConfigError` saying
    what is wrong with it otherwise.

    """
    example = ('{"cluster": {"worker": ["host1:port", "host2:port"]}, '
               '"task": {"type": "worker", "index": 0}}')
    if not text:
        raise ConfigError(f"--strategy multiworker needs TF_CONFIG, e.g. {example}")
    try:
        spec = json.loads(text)
    except ValueError as error:
        raise ConfigError(
            f"TF_CONFIG is not valid JSON ({error.msg}, char {error.pos}): set it like {example}"
        ) from None
    task = spec.get("task") if isinstance(spec, dict) else None
    if not isinstance(task, dict) or not isinstance(spec.get("cluster"), dict) or not (
        task.get("type") in spec["cluster"] and isinstance(task.get("index"), int)
    ):
        raise ConfigError(f"TF_CONFIG needs a cluster and this process's task, like {example}")
    return spec


def is_chief(strategy: tf.distribute.Strategy) -> tuple[bool, str]:
    """``(chief, worker name)``: whether this process writes the run's files
    (always, but under ``MultiWorkerMirroredStrategy`` for one worker: the
    ``chief`` task, else worker 0), and a name for its temporary files."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return True, "chief"
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type is None:
        return True, "chief"
    cluster = resolver.cluster_spec().as_dict()
    chief = task_type == "chief" or (task_type == "worker" and task_id == 0
                                     and "chief" not in cluster)
    return chief, f"{task_type}-{task_id}"
