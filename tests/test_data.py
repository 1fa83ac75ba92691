"""Dataset pipelines: TFDS (through tfds.testing.mock_data), npz:, folder:."""

import itertools
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

import train
from lcr_larq import data
from lcr_larq.data import augment, files
from lcr_larq.data import tfds as tfds_data
from lcr_larq.errors import DataError, UserError
from lcr_larq.training import TrainConfig


def supervised_source(images, labels, encode=False):
    """A mock ``_as_dataset`` that serves these exact images for every split."""

    def as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False, **_):
        if encode:
            image = [tf.io.encode_png(tf.constant(i)).numpy() for i in images]
        else:
            image = np.stack(images)
        return tf.data.Dataset.from_tensor_slices(
            {"image": image, "label": np.asarray(labels, np.int64)}
        )

    return as_dataset


def batches(ds, epochs=1):
    return [[(x.numpy(), y.numpy()) for x, y in ds] for _ in range(epochs)]


def train_batches(dataset, epochs=1):
    """The training batches of epochs 0 .. epochs-1, each made on its own."""
    return [[(x.numpy(), y.numpy()) for x, y in dataset.epoch(tf.constant(e, tf.int64))]
            for e in range(epochs)]


def unnormalize(x, mean, std):
    return np.round((x * np.asarray(std) + np.asarray(mean)) * 255.0).astype(np.int64)


# ---------------------------------------------------------------------------
# TFDS pipelines


@pytest.mark.parametrize(
    "name, size, classes",
    [("cifar10", 32, 10), ("cifar100", 32, 100), ("imagenet2012", 224, 1000)],
)
def test_tfds_pipeline_shapes_and_dtypes(name, size, classes, tfds_mocked):
    with tfds.testing.mock_data(num_examples=6):
        dataset = data.load_dataset(name, batch_size=4, seed=0)
    assert dataset.input_shape == (size, size, 3)
    assert dataset.num_classes == classes
    assert dataset.train_size == 6 and dataset.test_size == 6
    assert int(dataset.train.cardinality()) == 2  # 4 + 2, the remainder kept
    for split in (dataset.train, dataset.test):
        x, y = next(iter(split))
        assert x.shape == (4, size, size, 3) and x.dtype == tf.float32
        assert y.dtype == tf.int32 and np.all((y.numpy() >= 0) & (y.numpy() < classes))
        assert np.isfinite(x.numpy()).all()
        # Normalized: values are (p/255 − mean)/std, well outside [0, 1] for p = 0.
        assert x.numpy().min() < 0


def test_imagenet_input_size_sets_crop_and_model_shape(tfds_mocked):
    with tfds.testing.mock_data(num_examples=3):
        dataset = data.load_dataset("imagenet2012", batch_size=3, seed=0, input_size=64)
    assert dataset.input_shape == (64, 64, 3)
    assert next(iter(dataset.train))[0].shape == (3, 64, 64, 3)
    assert next(iter(dataset.test))[0].shape == (3, 64, 64, 3)


def test_cifar_input_size_resizes_train_and_test(tfds_mocked):
    with tfds.testing.mock_data(num_examples=4):
        dataset = data.load_dataset("cifar10", batch_size=4, seed=0, input_size=40)
    assert dataset.input_shape == (40, 40, 3)
    assert next(iter(dataset.train))[0].shape == (4, 40, 40, 3)
    assert next(iter(dataset.test))[0].shape == (4, 40, 40, 3)
    assert dataset.test_arrays[0].shape == (4, 40, 40, 3)


def test_cifar_normalization_statistics_are_applied(tfds_mocked):
    values = [0, 17, 128, 255]
    images = [np.full((32, 32, 3), v, np.uint8) for v in values]
    with tfds.testing.mock_data(as_dataset_fn=supervised_source(images, [0, 1, 2, 3])):
        dataset = data.load_dataset("cifar10", batch_size=4, seed=0)
    mean, std = np.array(tfds_data.CIFAR10_MEAN), np.array(tfds_data.CIFAR10_STD)
    x, y = next(iter(dataset.test))
    for image, label in zip(x.numpy(), y.numpy()):
        expected = (values[label] / 255.0 - mean) / std
        np.testing.assert_allclose(image, np.broadcast_to(expected, image.shape), atol=1e-5)
    np.testing.assert_array_equal(dataset.test_arrays[0], np.stack(images))
    assert dataset.info["mean"] == list(tfds_data.CIFAR10_MEAN)
    # Train: the centre is never padding, so it is the normalized constant too.
    x, y = next(iter(dataset.train))
    for image, label in zip(x.numpy(), y.numpy()):
        np.testing.assert_allclose(image[16, 16], (values[label] / 255.0 - mean) / std, atol=1e-5)


def test_cifar100_uses_its_own_statistics(tfds_mocked):
    images = [np.full((32, 32, 3), 100, np.uint8)]
    with tfds.testing.mock_data(as_dataset_fn=supervised_source(images, [5])):
        dataset = data.load_dataset("cifar100", batch_size=1, seed=0)
    x, _ = next(iter(dataset.test))
    expected = (100 / 255.0 - np.array(tfds_data.CIFAR100_MEAN)) / np.array(tfds_data.CIFAR100_STD)
    np.testing.assert_allclose(x.numpy()[0, 0, 0], expected, atol=1e-5)


def crops_and_flips(image, pad=4):
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)))
    size = image.shape[0]
    for dy, dx, flip in itertools.product(range(2 * pad + 1), range(2 * pad + 1), (False, True)):
        crop = padded[dy : dy + size, dx : dx + size]
        yield (dy, dx, flip), crop[:, ::-1] if flip else crop


def test_cifar_augmentation_only_on_train(tfds_mocked):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(4)]
    with tfds.testing.mock_data(as_dataset_fn=supervised_source(images, [0, 1, 2, 3])):
        dataset = data.load_dataset("cifar10", batch_size=4, seed=0)
    mean, std = tfds_data.CIFAR10_MEAN, tfds_data.CIFAR10_STD

    # Eval: deterministic, exactly the normalized images.
    first, second = batches(dataset.test, epochs=2)
    np.testing.assert_array_equal(first[0][0], second[0][0])
    for image, label in zip(*first[0]):
        np.testing.assert_array_equal(unnormalize(image, mean, std), images[label])

    # Train: every image is one of the 81 × 2 pad-4 crops/flips, and they vary.
    views = set()
    epochs = train_batches(dataset, epochs=2)
    for epoch in epochs:
        for x, y in epoch:
            for image, label in zip(x, y):
                pixels = unnormalize(image, mean, std)
                found = [v for v, crop in crops_and_flips(images[label]) if (crop == pixels).all()]
                assert found, "a training image is not a crop/flip of its source"
                views.add(found[0])
    assert len(views) > 2 and views != {(4, 4, False)}
    assert not np.array_equal(epochs[0][0][0], epochs[1][0][0])  # new draws every epoch


def test_cifar_pipeline_is_deterministic_for_a_seed(tfds_mocked):
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(8)]
    source = supervised_source(images, list(range(8)))

    def two_epochs(seed):
        with tfds.testing.mock_data(as_dataset_fn=source):
            dataset = data.load_dataset("cifar10", batch_size=8, seed=seed)
        return batches(dataset.train, epochs=2)

    a, b, c = two_epochs(3), two_epochs(3), two_epochs(4)
    for epoch_a, epoch_b in zip(a, b):
        for (xa, ya), (xb, yb) in zip(epoch_a, epoch_b):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a[0][0][0], c[0][0][0])


def test_imagenet_eval_is_resize_256_and_center_crop_224_by_hand(tfds_mocked):
    rng = np.random.default_rng(2)
    # 256 × 384: the shorter side is already 256, so only the crop acts.
    wide = rng.integers(0, 256, (256, 384, 3), dtype=np.uint8)
    # 512 × 600 of constant 2 × 2 blocks: bilinear halving returns the blocks.
    blocks = rng.integers(0, 256, (256, 300, 3), dtype=np.uint8)
    tall = np.repeat(np.repeat(blocks, 2, axis=0), 2, axis=1)
    source = supervised_source([wide, tall], [7, 9], encode=True)
    with tfds.testing.mock_data(as_dataset_fn=source):
        dataset = data.load_dataset("imagenet2012", batch_size=2, seed=0)
    expected = {7: wide[16:240, 80:304], 9: blocks[16:240, 38:262]}
    mean, std = np.array(tfds_data.IMAGENET_MEAN), np.array(tfds_data.IMAGENET_STD)
    first, second = batches(dataset.test, epochs=2)
    np.testing.assert_array_equal(first[0][0], second[0][0])
    x, y = first[0]
    assert sorted(y.tolist()) == [7, 9]
    for image, label in zip(x, y):
        np.testing.assert_allclose(image, (expected[label] / 255.0 - mean) / std, atol=1e-5)
    # Train: random views, new ones every epoch, never the evaluation view.
    train_epochs = train_batches(dataset, epochs=2)
    assert not np.array_equal(train_epochs[0][0][0], train_epochs[1][0][0])
    for image, label in zip(*train_epochs[0][0]):
        assert image.shape == (224, 224, 3)
        assert not np.allclose(image, (expected[label] / 255.0 - mean) / std, atol=1e-3)


def test_random_resized_crop_covers_8_to_100_percent_with_bounded_aspect():
    # Pixel values encode coordinates: red = row, green = column.
    rows, cols = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    coded = np.stack([rows, cols, np.zeros_like(rows)], axis=-1).astype(np.uint8)
    encoded = tf.io.encode_png(coded)
    areas = []
    for seed in range(40):
        view = augment.random_resized_crop(encoded, tf.constant([seed, 7]), size=32).numpy()
        assert view.shape == (32, 32, 3) and view.dtype == np.uint8
        height = int(view[..., 0].max()) - int(view[..., 0].min()) + 1
        width = int(view[..., 1].max()) - int(view[..., 1].min()) + 1
        areas.append(height * width / 256**2)
        assert 0.06 <= areas[-1] <= 1.0
        assert 0.7 <= width / height <= 1.45
    assert min(areas) < 0.4 and max(areas) > 0.5  # the scale really varies
    again = augment.random_resized_crop(encoded, tf.constant([3, 7]), size=32).numpy()
    np.testing.assert_array_equal(
        again, augment.random_resized_crop(encoded, tf.constant([3, 7]), size=32).numpy()
    )


def test_missing_data_dir_is_an_error(tmp_path):
    for name in ("cifar10", "imagenet2012"):
        with pytest.raises(DataError, match="--data-dir .* does not exist"):
            data.load_dataset(name, data_dir=str(tmp_path / "nowhere"))


def test_imagenet_without_archives_names_the_manual_download(tmp_path):
    with pytest.raises(DataError, match="ILSVRC2012_img_train.tar.*image-net.org"):
        data.load_dataset("imagenet2012", data_dir=str(tmp_path))


# ---------------------------------------------------------------------------
# npz: and folder:


def digits_like(rng, n_per_class=6, classes=3, shape=(10, 12), channels=1):
    x = rng.integers(0, 256, (n_per_class * classes, *shape, channels), dtype=np.uint8)
    y = np.repeat(np.arange(classes), n_per_class).astype(np.int32)
    return x, y


def write_folder(root, x, y, names=None):
    counters = {}
    for image, label in zip(x, y):
        name = names[label] if names else str(label)
        os.makedirs(root / name, exist_ok=True)
        k = counters[label] = counters.get(label, -1) + 1
        pixels = image[..., 0] if image.shape[-1] == 1 else image
        Image.fromarray(pixels).save(root / name / f"{k:05d}.png")


def test_npz_grayscale_with_held_out_split(tmp_path, rng):
    x, y = digits_like(rng, n_per_class=10)
    path = tmp_path / "mine.npz"
    np.savez(path, x=x[..., 0], y=y)  # N×H×W: grayscale
    dataset = data.load_dataset(f"npz:{path}", batch_size=8, seed=0)
    assert dataset.input_shape == (10, 12, 1) and dataset.num_classes == 3
    assert dataset.train_size == 24 and dataset.test_size == 6
    x_test, y_test = dataset.test_arrays
    assert np.bincount(y_test).tolist() == [2, 2, 2]  # stratified 20 %
    # Held-out images are exactly source images, none also in the training split.
    flat = {img.tobytes(): label for img, label in zip(x, y)}
    assert all(flat[img.tobytes()] == label for img, label in zip(x_test, y_test))
    train_bytes = {img.tobytes() for img, _ in dataset.train.unbatch().as_numpy_iterator()}
    assert len(train_bytes) == 24
    assert dataset.info["test_split"].startswith("held out")
    # The split does not move with --seed.
    other = data.load_dataset(f"npz:{path}", batch_size=8, seed=5)
    np.testing.assert_array_equal(other.test_arrays[0], x_test)


def test_npz_with_test_split_rgb_and_input_size(tmp_path, rng):
    x, y = digits_like(rng, channels=3)
    xt, yt = digits_like(rng, n_per_class=2, channels=3)
    path = tmp_path / "rgb.npz"
    np.savez(path, x=x, y=y, x_test=xt, y_test=yt)
    dataset = data.load_dataset(f"npz:{path}", batch_size=8, seed=0)
    assert dataset.input_shape == (10, 12, 3)
    assert (dataset.train_size, dataset.test_size) == (18, 6)
    np.testing.assert_array_equal(dataset.test_arrays[0], xt)
    assert dataset.info["test_split"] == "given"
    # Per-channel normalization by the training images' statistics.
    mean = x.reshape(-1, 3).mean(0) / 255.0
    np.testing.assert_allclose(dataset.info["mean"], mean, rtol=1e-6)
    resized = data.load_dataset(f"npz:{path}", batch_size=8, seed=0, input_size=16)
    assert resized.input_shape == (16, 16, 3)
    assert next(iter(resized.train))[0].shape == (8, 16, 16, 3)


def test_folder_and_npz_give_identical_data(tmp_path, rng):
    x, y = digits_like(rng, n_per_class=5, classes=4)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    write_folder(tmp_path / "d", x, y)
    from_npz = data.load_dataset(f"npz:{tmp_path / 'd.npz'}", batch_size=4, seed=3)
    from_folder = data.load_dataset(f"folder:{tmp_path / 'd'}", batch_size=4, seed=3)
    assert from_folder.input_shape == from_npz.input_shape == (10, 12, 1)
    for a, b in zip(from_npz.test_arrays, from_folder.test_arrays):
        np.testing.assert_array_equal(a, b)
    assert from_folder.info["mean"] == from_npz.info["mean"]
    for (xa, ya), (xb, yb) in zip(*(batches(d.train)[0] for d in (from_npz, from_folder))):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_folder_rgb_with_train_and_test_subfolders(tmp_path, rng):
    x, y = digits_like(rng, n_per_class=3, classes=2, channels=3)
    names = ["cat", "dog"]
    write_folder(tmp_path / "pets" / "train", x, y, names)
    write_folder(tmp_path / "pets" / "test", x[:2], np.array([1, 1]), names)
    dataset = data.load_dataset(f"folder:{tmp_path / 'pets'}", batch_size=4, seed=0)
    assert dataset.input_shape == (10, 12, 3) and dataset.num_classes == 2
    assert (dataset.train_size, dataset.test_size) == (6, 2)
    assert dataset.info["class_names"] == names
    np.testing.assert_array_equal(dataset.test_arrays[0], x[:2])
    assert dataset.test_arrays[1].tolist() == [1, 1]


def test_folder_mixed_modes_and_sizes(tmp_path, rng):
    root = tmp_path / "mixed"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    gray = rng.integers(0, 256, (8, 8), dtype=np.uint8)
    Image.fromarray(gray).save(root / "a" / "1.png")
    Image.fromarray(np.stack([gray] * 3, -1)).save(root / "a" / "2.png")
    rgba = rng.integers(0, 256, (6, 6, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(root / "b" / "1.png")
    (root / ".DS_Store").write_bytes(b"hidden files are skipped")
    with pytest.raises(DataError, match="differ in size.*--input-size"):
        files.read_folder(str(root))
    x, y, _, _, names = files.read_folder(str(root), input_size=8)
    assert x.shape == (3, 8, 8, 3) and names == ["a", "b"] and y.tolist() == [0, 0, 1]
    # A grayscale file among colour ones becomes three equal channels.
    np.testing.assert_array_equal(x[0], np.stack([gray] * 3, -1))


def bad_case(tmp_path, rng, case):
    x, y = digits_like(rng)
    if case.startswith("npz"):
        path = tmp_path / "bad.npz"
        arrays = {
            "npz_flat": {"x": x.reshape(len(x), -1), "y": y},
            "npz_channels": {"x": np.concatenate([x, x], -1), "y": y},
            "npz_labels": {"x": x, "y": y[:-1]},
            "npz_float": {"x": x / 255.0, "y": y},
            "npz_keys": {"images": x, "labels": y},
            "npz_test_shape": {"x": x, "y": y, "x_test": x[:, :5], "y_test": y},
        }[case]
        np.savez(path, **arrays)
        return f"npz:{path}"
    root = tmp_path / "bad"
    root.mkdir()
    if case == "folder_empty_class":
        (root / "a").mkdir()
    elif case == "folder_text_file":
        write_folder(root, x, y)
        (root / "0" / "notes.txt").write_text("not an image")
    elif case == "folder_loose_file":
        write_folder(root, x, y)
        Image.fromarray(x[0, ..., 0]).save(root / "stray.png")
    elif case == "folder_corrupt":
        write_folder(root, x, y)
        (root / "1" / "broken.png").write_bytes(b"\x89PNG truncated")
    return f"folder:{root}"


@pytest.mark.parametrize(
    "case, needle",
    [
        ("npz_missing", "does not exist"),
        ("npz_flat", "must be N×H×W×C"),
        ("npz_channels", "C = 1 or 3"),
        ("npz_labels", "one integer label per image"),
        ("npz_float", "save uint8"),
        ("npz_keys", "needs x"),
        ("npz_test_shape", "save both at one size"),
        ("folder_missing", "does not exist"),
        ("folder_empty", "is empty"),
        ("folder_empty_class", "holds no images"),
        ("folder_text_file", "notes.txt is not an image"),
        ("folder_loose_file", "not in a class sub-folder"),
        ("folder_corrupt", "broken.png cannot be read as an image"),
        ("npz_no_path", "needs a path"),
    ],
)
def test_bad_input_is_a_one_line_error(tmp_path, rng, case, needle):
    if case == "npz_missing":
        spec = f"npz:{tmp_path / 'absent.npz'}"
    elif case == "folder_missing":
        spec = f"folder:{tmp_path / 'absent'}"
    elif case == "folder_empty":
        (tmp_path / "empty").mkdir()
        spec = f"folder:{tmp_path / 'empty'}"
    elif case == "npz_no_path":
        spec = "npz:"
    else:
        spec = bad_case(tmp_path, rng, case)
    # A dataset that cannot be read is a DataError; a --dataset without its path a ConfigError.
    with pytest.raises(UserError, match=needle) as error:
        data.load_dataset(spec, batch_size=4)
    assert "\n" not in str(error.value)
    assert isinstance(error.value, DataError) == (case != "npz_no_path")


def test_train_py_reports_bad_data_in_one_line(tmp_path, capsys):
    code = train.main(["--dataset", f"npz:{tmp_path / 'absent.npz'}", "--epochs", "2",
                       "--output-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "absent.npz does not exist" in err


def test_training_on_npz_builds_for_its_shape_and_steps_per_epoch_keeps_going(tmp_path, rng):
    x, y = digits_like(rng, n_per_class=12, classes=3, shape=(12, 12), channels=3)
    np.savez(tmp_path / "own.npz", x=x, y=y)
    from lcr_larq import training

    config = TrainConfig(
        dataset=f"npz:{tmp_path / 'own.npz'}", model="resnet8", epochs=3, steps_per_epoch=1,
        batch_size=16, verbose=0, output_dir=str(tmp_path / "run"), lcr_lambda=0.0,
    )
    results = training.run(config)
    # 30 training images make 2 batches: without repeating, epoch 3 would run dry.
    assert results["final_epoch_metrics"]["loss"] > 0
    history = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 3
    # 36 images: 6 held out as the test split, 10 % of the other 30 (1 per class) to validate.
    assert (results["train_size"], results["validation_size"], results["test_size"]) == (27, 3, 6)
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["dataset"].startswith("npz:")
    model = tf.keras.models.load_model(tmp_path / "run" / "bnn.keras", compile=False)
    assert model.input_shape == (None, 12, 12, 3) and model.output_shape == (None, 3)


def test_holdout_split_is_stratified_and_keeps_singletons_in_train():
    labels = np.array([0] * 10 + [1] * 5 + [2])
    images = np.arange(len(labels))[:, None, None, None].astype(np.uint8)
    x_train, y_train, x_test, y_test = data.holdout_split(images, labels, 0.2)
    assert np.bincount(y_test, minlength=3).tolist() == [2, 1, 0]
    assert 2 in y_train
    assert sorted(np.concatenate([x_train, x_test]).ravel().tolist()) == list(range(16))


def test_training_epochs_are_seeded_per_epoch_whatever_came_before():
    images = np.arange(8 * 4 * 4, dtype=np.uint8).reshape(8, 4, 4, 1)
    labels = np.arange(8, dtype=np.int32)
    examples = tf.data.Dataset.from_tensor_slices((images, labels))

    def epoch_fn(seed):
        return data.training_epochs(
            examples, 8, 8, lambda x: tf.cast(x, tf.float32), seed,
            augment=lambda x, s: augment.pad_crop_flip(x, s, pad=1),
        )

    def epoch(fn, e):
        (x, y), = [(x.numpy(), y.numpy()) for x, y in fn(tf.constant(e, tf.int64))]
        return x, y

    a, b = epoch_fn(0), epoch_fn(0)
    # Epoch 3 made first or after epochs 0-2: the same batch.
    late = epoch(b, 3)
    for e in range(3):
        epoch(a, e)
    np.testing.assert_array_equal(epoch(a, 3)[0], late[0])
    x0, y0 = epoch(a, 0)
    assert sorted(y0.tolist()) == list(range(8))  # a permutation of the epoch
    assert not np.array_equal(y0, epoch(a, 1)[1])  # a new order every epoch
    assert not np.array_equal(x0, epoch(epoch_fn(1), 0)[0])  # and per seed
    # Dataset.epochs: one pass after another, from any first epoch.
    dataset = data.load_dataset("digits", batch_size=512, seed=0)
    steps = dataset.steps_per_epoch
    assert steps == 3 and int(dataset.train.cardinality()) == 3
    from_two = [y.numpy() for _, y in dataset.epochs(2).take(steps)]
    expected = [y.numpy() for _, y in dataset.epoch(tf.constant(2, tf.int64))]
    assert all(np.array_equal(u, v) for u, v in zip(from_two, expected))


@pytest.mark.parametrize("kind", ["npz", "folder"])
@pytest.mark.parametrize("labels, test_labels, needle", [
    ([0] * 12, None, "the training labels hold 1 class: a classifier needs at least two"),
    ([0, 2] * 6, None, "labels must be the class indices 0..K-1 with training images of each"),
    ([0, 1, 2] * 4, [0, 7, 9], "test labels [7, 9] never occur in the training labels"),
])
def test_degenerate_labels_are_refused(tmp_path, rng, kind, labels, test_labels, needle):
    """A one-class dataset, labels that are not class indices and test classes
    without training images would train a meaningless model: refused."""
    y = np.array(labels)
    x = rng.integers(0, 256, size=(len(y), 6, 6, 1), dtype=np.uint8)
    if kind == "npz":
        arrays = {"x": x, "y": y}
        if test_labels is not None:
            arrays.update(x_test=x[: len(test_labels)], y_test=np.array(test_labels))
        np.savez(tmp_path / "d.npz", **arrays)
        spec = f"npz:{tmp_path / 'd.npz'}"
    else:
        if 2 in labels and 1 not in labels:
            pytest.skip("a folder's labels are its sorted class folders: always indices")
        if test_labels is None:
            write_folder(tmp_path / "d", x, y)
        else:
            names = [f"c{k}" for k in range(10)]
            write_folder(tmp_path / "d" / "train", x, y, names)
            write_folder(tmp_path / "d" / "test", x[: len(test_labels)], np.array(test_labels),
                         names)
            needle = "has no training folder"  # test class folders name the classes
        spec = f"folder:{tmp_path / 'd'}"
    with pytest.raises(DataError) as error:
        data.load_dataset(spec, batch_size=4, seed=0)
    assert needle in str(error.value)


def test_evaluation_batch_size_leaves_no_replica_an_empty_batch():
    for replicas in (1, 2, 3, 4):
        for batch in (replicas, 8, 16, 128):
            for size in range(1, 300):
                chosen = data.evaluation_batch_size(size, batch, replicas)
                assert replicas <= chosen <= max(batch, size)
                if size < replicas:
                    continue  # no batch size helps
                last = size % chosen
                # Both splits of a short last batch give every replica a sample.
                even = [last // replicas + (r < last % replicas) for r in range(replicas)]
                ceil = -(-last // replicas) if last else 0
                filled = [max(0, min(ceil, last - r * ceil)) for r in range(replicas)]
                assert last == 0 or (min(even) > 0 and min(filled) > 0), (size, batch, replicas)
                if replicas == 1 or data.reaches_every_replica(size % batch, replicas):
                    assert chosen == batch  # only an unlucky remainder changes it


def test_for_replicas_rebatches_evaluation_with_every_example_once():
    digits = data.load_dataset("digits", batch_size=16, validation_split=0.1, input_size=8)
    assert digits.validation_size == 145 and digits.validation_size % 16 == 1
    spread = digits.for_replicas(2)
    sizes = [int(y.shape[0]) for _, y in spread.validation]
    assert sizes == [15] * 9 + [10]
    before = np.concatenate([y.numpy() for _, y in digits.validation])
    after = np.concatenate([y.numpy() for _, y in spread.validation])
    np.testing.assert_array_equal(after, before)
    assert spread.test is digits.test  # 360 = 22 · 16 + 8: nothing to change
    assert digits.for_replicas(1).validation is digits.validation
