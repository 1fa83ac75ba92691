import numpy as np
import tensorflow as tf

from lcr_larq.metrics import BatchMeans


def test_batch_means_equal_one_keras_mean_per_name(rng):
    names = ["a", "b", "c"]
    means = BatchMeans(names)
    reference = [tf.keras.metrics.Mean() for _ in names]
    for epoch in range(2):
        for _ in range(4 + epoch):
            values = rng.normal(size=3).astype("float32")
            means.update_state(tf.constant(values))
            for metric, value in zip(reference, values):
                metric.update_state(value)
        result = means.result()
        assert list(result) == names
        for name, metric in zip(names, reference):
            np.testing.assert_allclose(float(result[name]), float(metric.result()), rtol=1e-6)
        means.reset_state()
        for metric in reference:
            metric.reset_state()
    assert all(float(v) == 0.0 for v in means.result().values())


def test_batch_means_config_round_trip():
    means = BatchMeans(["x", "y"], name="m")
    clone = BatchMeans.from_config(means.get_config())
    assert clone.names == ["x", "y"] and clone.name == "m"
