"""Augmentation and resizing of uint8 images, from stateless random ops.

* CIFAR (:func:`pad_crop_flip`): zero-pad 4, random crop back, random flip.
* ImageNet: :func:`random_resized_crop` for training (only the crop of a JPEG
  is decoded), :func:`resize_center_crop` for evaluation.

Example:
    >>> resize_images(np.full((2, 8, 8, 1), 7, np.uint8), 4).shape
    (2, 4, 4, 1)
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

__all__ = [
    "CIFAR_PAD",
    "IMAGENET_RESIZE",
    "IMAGENET_SIZE",
    "pad_crop_flip",
    "random_resized_crop",
    "resize_center_crop",
    "resize_image",
    "resize_images",
]

CIFAR_PAD = 4
IMAGENET_SIZE = 224  # crop size
IMAGENET_RESIZE = 256  # evaluation: shorter side, for a 224 crop


def pad_crop_flip(image: tf.Tensor, seed: tf.Tensor, pad: int = CIFAR_PAD) -> tf.Tensor:
    """CIFAR augmentation: zero-pad ``pad`` pixels, random crop back, random flip.

    Example:
        >>> image = tf.cast(tf.reshape(tf.range(16), (4, 4, 1)), tf.uint8)
        >>> out = pad_crop_flip(image, tf.constant([1, 2]), pad=1)
        >>> out.shape, out.dtype
        (TensorShape([4, 4, 1]), tf.uint8)
    """
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    shape = image.shape if image.shape.is_fully_defined() else tf.shape(image)
    padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
    image = tf.image.stateless_random_crop(padded, shape, seed=crop_seed)
    return tf.image.stateless_random_flip_left_right(image, seed=flip_seed)


def _to_uint8(images: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.clip_by_value(tf.round(images), 0.0, 255.0), tf.uint8)


def resize_image(image: tf.Tensor, size: int) -> tf.Tensor:
    """A uint8 image (or batch) resized to ``size``×``size``, bilinear, still uint8."""
    spatial = image.shape[-3:-1]
    if spatial == (size, size):
        return image
    return _to_uint8(tf.image.resize(tf.cast(image, tf.float32), (size, size)))


def resize_images(images: np.ndarray, size: int, chunk: int = 1024) -> np.ndarray:
    """uint8 arrays N×H×W×C resized to N×``size``×``size``×C (bilinear).

    Example:
        >>> resize_images(np.full((2, 8, 8, 1), 7, np.uint8), 4).shape
        (2, 4, 4, 1)
    """
    if images.shape[1:3] == (size, size):
        return images
    parts = [
        resize_image(tf.constant(images[i : i + chunk]), size).numpy()
        for i in range(0, len(images), chunk)
    ]
    return np.concatenate(parts) if parts else images[:, :size, :size]


def _image_shape(encoded: tf.Tensor) -> tf.Tensor:
    """Height, width, channels of an encoded image, without decoding a JPEG."""
    return tf.cond(
        tf.io.is_jpeg(encoded),
        lambda: tf.image.extract_jpeg_shape(encoded),
        lambda: tf.shape(tf.io.decode_image(encoded, channels=3, expand_animations=False)),
    )


def _decode_window(encoded: tf.Tensor, window: tf.Tensor) -> tf.Tensor:
    """Decodes only ``window`` = [y, x, height, width] of an encoded image (RGB)."""

    def other():
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        return tf.image.crop_to_bounding_box(image, window[0], window[1], window[2], window[3])

    return tf.cond(
        tf.io.is_jpeg(encoded),
        lambda: tf.image.decode_and_crop_jpeg(encoded, window, channels=3),
        other,
    )


def random_resized_crop(encoded: tf.Tensor, seed: tf.Tensor, size: int = IMAGENET_SIZE):
    """ImageNet training view: a random crop of 8–100 % of the area and aspect
    ratio 3/4–4/3, resized to ``size``×``size`` (bilinear), randomly flipped.

    ``encoded`` is a JPEG (only the crop is decoded) or any image tf.io decodes.
    """
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    begin, extent, _ = tf.image.stateless_sample_distorted_bounding_box(
        _image_shape(encoded),
        bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], shape=(1, 1, 4)),
        seed=crop_seed,
        min_object_covered=0.0,
        aspect_ratio_range=(3 / 4, 4 / 3),
        area_range=(0.08, 1.0),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    window = tf.stack([begin[0], begin[1], extent[0], extent[1]])
    image = tf.image.resize(tf.cast(_decode_window(encoded, window), tf.float32), (size, size))
    image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
    return tf.ensure_shape(_to_uint8(image), (size, size, 3))


def resize_center_crop(encoded: tf.Tensor, size: int = IMAGENET_SIZE) -> tf.Tensor:
    """ImageNet evaluation view: the shorter side resized to ``size``·256/224
    (bilinear, aspect kept), then the central ``size``×``size`` crop."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    short = int(round(size * IMAGENET_RESIZE / IMAGENET_SIZE))
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    scale = short / tf.cast(tf.minimum(height, width), tf.float64)
    new_height = tf.maximum(short, tf.cast(tf.round(tf.cast(height, tf.float64) * scale), tf.int32))
    new_width = tf.maximum(short, tf.cast(tf.round(tf.cast(width, tf.float64) * scale), tf.int32))
    image = tf.image.resize(tf.cast(image, tf.float32), tf.stack([new_height, new_width]))
    top, left = (new_height - size) // 2, (new_width - size) // 2
    image = tf.image.crop_to_bounding_box(image, top, left, size, size)
    return tf.ensure_shape(_to_uint8(image), (size, size, 3))
