"""Your own data: ``npz:PATH`` (arrays) and ``folder:PATH`` (image files).

* ``npz:PATH`` — arrays ``x``, ``y`` and optionally ``x_test``, ``y_test``
  (:func:`read_npz`);
* ``folder:PATH`` — one sub-folder of images per class, or ``train/`` and
  ``test/`` (:func:`read_folder`).

Without a test split a stratified 20 % is held out (fixed seed). Both are
read into memory and normalized by the training images' statistics.

Example:
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "mine.npz")
    >>> np.savez(path, x=np.zeros((4, 5, 6), np.uint8), y=np.arange(4))
    >>> x, y, x_test, y_test = read_npz(path)
    >>> x.shape, y.tolist(), x_test
    ((4, 5, 6, 1), [0, 1, 2, 3], None)
"""

from __future__ import annotations

import os

import numpy as np

from lcr_larq.data.augment import resize_images
from lcr_larq.data.pipeline import HOLDOUT_FRACTION, Dataset, from_arrays, holdout_split
from lcr_larq.data.registry import DatasetRequest, DatasetSource, register_dataset
from lcr_larq.errors import DataError

__all__ = [
    "IMAGE_EXTENSIONS",
    "Folder",
    "Npz",
    "read_folder",
    "read_image",
    "read_npz",
]

IMAGE_EXTENSIONS = (
    ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm",
)


def _check_images(where: str, key: str, images: np.ndarray) -> np.ndarray:
    if images.ndim == 3:  # N×H×W: grayscale
        images = images[..., np.newaxis]
    if (images.ndim != 4 or images.shape[-1] not in (1, 3) or not len(images)
            or min(images.shape[1:3]) < 1):
        raise DataError(
            f"{where}: {key} has shape {images.shape}; it must be N×H×W×C images with "
            "C = 1 or 3 (and N, H, W ≥ 1)"
        )
    if images.dtype != np.uint8:
        integral = np.issubdtype(images.dtype, np.integer)
        if not integral or images.min() < 0 or images.max() > 255:
            raise DataError(
                f"{where}: {key} is {images.dtype}; save uint8 pixels 0–255 "
                "(e.g. (x * 255).round().astype('uint8') for images in [0, 1])"
            )
        images = images.astype(np.uint8)
    return images


def _check_labels(where: str, key: str, labels: np.ndarray, count: int) -> np.ndarray:
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or len(labels) != count:
        raise DataError(
            f"{where}: {key} has shape {labels.shape}; it must hold one integer label "
            f"per image ({count},)"
        )
    if not np.issubdtype(labels.dtype, np.integer) or (count and labels.min() < 0):
        raise DataError(
            f"{where}: {key} must be integer class indices >= 0, got {labels.dtype}"
            + (f" with minimum {labels.min()}" if np.issubdtype(labels.dtype, np.number) else "")
        )
    return labels.astype(np.int32)


def read_npz(path: str):
    """``(x, y, x_test, y_test)`` of an ``.npz`` file; the test pair is ``(None, None)``
    when the file has none.

    The file holds ``x`` (N×H×W×C uint8, C = 1 or 3; N×H×W is read as
    grayscale) and ``y`` (N integer labels), and optionally ``x_test`` and
    ``y_test``. ``x_train``/``y_train`` are accepted for ``x``/``y``.

    """
    where = f"npz:{path}"
    if not os.path.isfile(path):
        raise DataError(f"{where} does not exist: give a .npz file with arrays x and y")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except Exception as error:  # numpy raises many kinds for a bad file
        raise DataError(
            f"{where} is not a readable .npz file ({type(error).__name__}): write it with "
            "numpy.savez(path, x=images, y=labels)"
        ) from None
    x_key = "x" if "x" in arrays else "x_train"
    y_key = "y" if "y" in arrays else "y_train"
    if x_key not in arrays or y_key not in arrays:
        raise DataError(
            f"{where} holds arrays {sorted(arrays)}; it needs x (images) and y (labels), "
            "and optionally x_test and y_test"
        )
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise DataError(f"{where}: give both x_test and y_test, or neither")
    x = _check_images(where, x_key, arrays[x_key])
    y = _check_labels(where, y_key, arrays[y_key], len(x))
    x_test = y_test = None
    if "x_test" in arrays:
        x_test = _check_images(where, "x_test", arrays["x_test"])
        y_test = _check_labels(where, "y_test", arrays["y_test"], len(x_test))
        if x_test.shape[1:] != x.shape[1:]:
            raise DataError(
                f"{where}: x_test images are {x_test.shape[1:]} but x images are "
                f"{x.shape[1:]}: save both at one size and channel count"
            )
    return x, y, x_test, y_test


def _listing(directory: str) -> list[str]:
    return sorted(entry for entry in os.listdir(directory) if not entry.startswith("."))


def _class_folders(directory: str, where: str) -> list[str]:
    entries = _listing(directory)
    if not entries:
        raise DataError(
            f"{where}: {directory} is empty: put each class's images in {directory}/<class>/"
        )
    loose = [e for e in entries if not os.path.isdir(os.path.join(directory, e))]
    if loose:
        raise DataError(
            f"{where}: {os.path.join(directory, loose[0])} is not in a class sub-folder: "
            f"move each image into {directory}/<class>/ (one sub-folder per class)"
        )
    return entries


def _image_files(directory: str, where: str) -> list[str]:
    files = _listing(directory)
    for name in files:
        path = os.path.join(directory, name)
        if os.path.isdir(path):
            raise DataError(
                f"{where}: {path} is a folder inside a class folder: keep one level "
                "of class sub-folders holding images"
            )
        if not name.lower().endswith(IMAGE_EXTENSIONS):
            raise DataError(
                f"{where}: {path} is not an image ({', '.join(IMAGE_EXTENSIONS)}): "
                "remove it or move it out of the dataset folder"
            )
    if not files:
        raise DataError(f"{where}: class folder {directory} holds no images: add some or remove it")
    return [os.path.join(directory, name) for name in files]


def read_image(path: str) -> np.ndarray:
    """One image file as uint8 H×W×1 (grayscale files) or H×W×3 (everything else)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            mode = image.mode
            if mode in ("1", "L", "LA"):
                return np.asarray(image.convert("L"), np.uint8)[..., np.newaxis]
            if mode.startswith("I;16"):
                wide = np.asarray(image, np.float64) / 257.0
                return np.round(wide).astype(np.uint8)[..., np.newaxis]
            return np.asarray(image.convert("RGB"), np.uint8)
    except Exception as error:  # PIL raises many kinds for a broken file
        raise DataError(
            f"{path} cannot be read as an image ({type(error).__name__}): remove or replace it"
        ) from None


def _read_all(paths: list[str]) -> list[np.ndarray]:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        return list(pool.map(read_image, paths))


def _stack(images: list[np.ndarray], paths: list[str], input_size: int | None, where: str):
    """One uint8 array from images of possibly mixed channels (and sizes)."""
    channels = 3 if any(image.shape[-1] == 3 for image in images) else 1
    if channels == 3:
        images = [np.repeat(i, 3, axis=-1) if i.shape[-1] == 1 else i for i in images]
    sizes = {}
    for image, path in zip(images, paths):
        sizes.setdefault(image.shape[:2], path)
    if input_size is not None:
        return np.stack([resize_images(i[np.newaxis], input_size)[0] for i in images])
    if len(sizes) > 1:
        (a, path_a), (b, path_b) = list(sizes.items())[:2]
        raise DataError(
            f"{where}: images differ in size ({a[0]}×{a[1]} {path_a}, {b[0]}×{b[1]} "
            f"{path_b}): pass --input-size N to resize them all to N×N"
        )
    return np.stack(images)


def read_folder(path: str, input_size: int | None = None):
    """``(x, y, x_test, y_test, class_names)`` of an image folder.

    ``PATH/<class>/<image>``: one sub-folder per class (labels follow the
    sorted class names; within a class, images follow sorted file names), and
    ``(x_test, y_test) = (None, None)``. ``PATH/train/<class>/…`` and
    ``PATH/test/<class>/…`` give the test split. Hidden files are skipped;
    any other non-image file is an error. Images are uint8, H×W×1 if every file
    is grayscale, H×W×3 otherwise; of one size, or resized to ``input_size``.
    """
    where = f"folder:{path}"
    if not os.path.isdir(path):
        raise DataError(
            f"{where} does not exist: give a directory with one sub-folder of images per class"
        )
    top = _listing(path)
    split = set(top) == {"train", "test"} and all(
        os.path.isdir(os.path.join(path, d)) for d in top
    )
    roots = [os.path.join(path, "train")] + ([os.path.join(path, "test")] if split else [])
    if not split:
        roots = [path]
    class_names = _class_folders(roots[0], where)
    index = {name: k for k, name in enumerate(class_names)}
    parts = []
    for root in roots:
        names = _class_folders(root, where)
        unknown = [n for n in names if n not in index]
        if unknown:
            raise DataError(
                f"{where}: class {unknown[0]!r} of {root} has no training folder: add "
                f"{os.path.join(roots[0], unknown[0])} or remove it"
            )
        files = [(f, index[n]) for n in names for f in _image_files(os.path.join(root, n), where)]
        parts.append(files)
    every = [f for files in parts for f, _ in files]
    images = _stack(_read_all(every), every, input_size, where)
    labels = np.array([label for files in parts for _, label in files], np.int32)
    count = len(parts[0])
    if split:
        return images[:count], labels[:count], images[count:], labels[count:], class_names
    return images, labels, None, None, class_names


def _own_dataset(
    request: DatasetRequest,
    arrays: tuple,
    input_size: int | None,
    class_names: list[str] | None = None,
) -> Dataset:
    x, y, x_test, y_test = arrays
    if input_size is not None:
        x = resize_images(x, input_size)
        x_test = None if x_test is None else resize_images(x_test, input_size)
    held_out = x_test is None
    if held_out:
        x, y, x_test, y_test = holdout_split(x, y)
    dataset = from_arrays(
        str(request.spec), x, y, x_test, y_test, batch_size=request.batch_size, seed=request.seed,
        num_classes=len(class_names) if class_names else None,
        validation_split=request.validation_split,
    )
    dataset.info.update(
        source=request.spec.name,
        test_split=f"held out {HOLDOUT_FRACTION:.0%} (stratified, fixed)" if held_out else "given",
        class_names=class_names or [str(k) for k in range(dataset.num_classes)],
    )
    return dataset


@register_dataset
class Npz(DatasetSource):
    """``npz:PATH`` — arrays ``x``, ``y`` (and optionally ``x_test``, ``y_test``),
    see :func:`read_npz`; normalized by the training images' statistics."""

    name = "npz"
    description = "your arrays: x, y and optionally x_test, y_test in a .npz file"
    takes_path = True

    def load(self, request: DatasetRequest) -> Dataset:
        return _own_dataset(request, read_npz(request.spec.path), request.input_size)


@register_dataset
class Folder(DatasetSource):
    """``folder:PATH`` — one sub-folder of images per class (see :func:`read_folder`),
    read into memory; normalized by the training images' statistics."""

    name = "folder"
    description = "your images: one sub-folder per class, or train/ and test/"
    takes_path = True

    def load(self, request: DatasetRequest) -> Dataset:
        *arrays, class_names = read_folder(request.spec.path, request.input_size)
        return _own_dataset(request, tuple(arrays), None, class_names)
