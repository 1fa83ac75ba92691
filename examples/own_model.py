"""Your own model with LCR

A binary ResNet written from scratch with Larq's layers, trained with LCR on digits (or on
your arrays with `--npz`), then stripped of LCR, its batch-norm statistics re-estimated,
scored, saved as a Keras model and converted to a Larq Compute Engine flatbuffer:

```bash
python examples/own_model.py                      # digits, 20 epochs: 1.5 min of CPU time
python examples/own_model.py --npz mine.npz --lcr-lambda 0 --output runs/mine_plain
```

`--npz` takes the arrays `x` (N×H×W or N×H×W×C, uint8) and `y` (class indices), and
optionally `x_test`, `y_test`, as `lcr-train --dataset npz:PATH` does. The model function is
the one [LCR on your own model](../docs/own-model.md) walks through block by block. (The
CPU time: a 2-core AMD EPYC of the Zen 3 family, TensorFlow 2.19.1, other work sharing the
cores.)
"""

import argparse
import os

import lcr_larq  # before Larq and TensorFlow: tf.keras is then Keras 2 (tf-keras)

# isort: split
import larq as lq
import larq_compute_engine as lce
import tensorflow as tf

from lcr_larq.data import load_dataset

BINARY = dict(input_quantizer="ste_sign", kernel_quantizer="ste_sign",
              kernel_constraint="weight_clip", padding="same", pad_values=1.0, use_bias=False)


def residual_bnn(input_shape, num_classes, width=32):
    x = inputs = tf.keras.Input(input_shape)
    x = tf.keras.layers.Conv2D(width, 3, padding="same", use_bias=False)(x)
    x = tf.keras.layers.BatchNormalization(name="stem_bn")(x)
    for i, (filters, stride) in enumerate([(width, 1), (2 * width, 2), (2 * width, 1)],
                                          start=1):
        y = lq.layers.QuantConv2D(filters, 3, strides=stride, **BINARY)(x)
        y = tf.keras.layers.BatchNormalization()(y)
        if stride > 1:  # the shortcut: average pool, then a real 1×1 convolution
            x = tf.keras.layers.AveragePooling2D(stride)(x)
            x = tf.keras.layers.Conv2D(filters, 1, use_bias=False)(x)
            x = tf.keras.layers.BatchNormalization()(x)
        x = tf.keras.layers.Add(name=f"residual_{i}")([x, y])
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(num_classes)(x), name="mine")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--npz", help="your arrays (default: scikit-learn's digits)")
    parser.add_argument("--lcr-lambda", type=float, default=4.0, help="λ; 0 trains without LCR")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--steps-per-epoch", type=int, help="default: one pass over the data")
    parser.add_argument("--output", default="runs/own_model", help="directory of the files")
    args = parser.parse_args()

    data = load_dataset(f"npz:{args.npz}" if args.npz else "digits", batch_size=128, seed=0)
    epochs, steps = args.epochs, args.steps_per_epoch or data.steps_per_epoch
    bnn = lcr_larq.make_full_precision_aware(residual_bnn(data.input_shape, data.num_classes))
    model = lcr_larq.attach_lcr(bnn, lcr_lambda=args.lcr_lambda, lcr_beta=2.0)
    model.compile(tf.keras.optimizers.Adam(1e-2),
                  tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(data.epochs(), epochs=epochs, steps_per_epoch=steps, verbose=2,
              callbacks=lcr_larq.schedules_for(model, epochs, steps))

    bnn = lcr_larq.strip_lcr(model)  # the deployed network: nothing of LCR in it
    lcr_larq.recalibrate_batchnorm(bnn, data.calibration)  # BN statistics of the final weights
    bnn.compile(metrics=["accuracy"])
    accuracy = bnn.evaluate(data.test, return_dict=True, verbose=0)["accuracy"]
    os.makedirs(args.output, exist_ok=True)
    bnn.save(os.path.join(args.output, "bnn.keras"))
    with open(os.path.join(args.output, "bnn_lce.tflite"), "wb") as flatbuffer:
        flatbuffer.write(lce.convert_keras_model(bnn))
    print(f"test accuracy {100 * accuracy:.2f} % (λ = {args.lcr_lambda:g}); "
          f"wrote {args.output}/bnn.keras and bnn_lce.tflite")


if __name__ == "__main__":
    main()
