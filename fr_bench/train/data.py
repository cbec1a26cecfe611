"""Training data: the dataset contract, ImageFolder trees, :func:`open_dataset` and the model-input transform.

A :class:`TrainDataset` is a torch ``Dataset`` whose items are ``(image, label)``: the image a ``uint8`` tensor
``(H, W, 3)`` in RGB at its stored size, the label an ``int`` in ``0 .. num_classes - 1``. It also exposes
``num_classes``, ``labels`` (every label, for class-count statistics) and ``describe()`` (JSON-able provenance).
Datasets hold paths and small arrays only, so they pickle cheaply into ``DataLoader`` workers, which open files
lazily.

Three sources (:func:`open_dataset`): an ImageFolder tree ``root/<identity>/<image>`` (:class:`ImageFolder`), an
MXNet RecordIO pack as MS1MV2/MS1MV3/Glint360K/WebFace ship them (:mod:`fr_bench.train.recordio`), or the word
``"synthetic"`` (:mod:`fr_bench.train.synthetic`).

:func:`make_transform` turns those uint8 images into model input through :class:`fr_bench.models.Preprocessing` and
:func:`fr_bench.models.to_model_input`, the one definition of the input contract (resize included) that evaluation
applies too.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from fr_bench.models import Preprocessing, to_model_input
from fr_bench.models.preprocess import resize_uint8  # noqa: F401  (re-exported: the synthetic protocol's crops)

#: File name endings recognised as images in ImageFolder trees (case-insensitive).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
#: Largest image accepted (width x height): a bound against decompression bombs, far above any face crop.
MAX_IMAGE_PIXELS = 4096 * 4096


class DataError(ValueError):
    """Bad training data; the message names the file (and the record key or class folder)."""


def decode_image(source: str | Path | bytes | bytearray | memoryview, where: str) -> np.ndarray:
    """An encoded image (a file path or its bytes) as an ``(H, W, 3)`` ``uint8`` RGB array.

    The header is read first and images over :data:`MAX_IMAGE_PIXELS` are refused before decoding.
    Any failure raises :class:`DataError` naming ``where``.
    """
    fp: Any = source if isinstance(source, (str, Path)) else io.BytesIO(bytes(source))
    try:
        with Image.open(fp) as im:
            w, h = im.size
            if w * h > MAX_IMAGE_PIXELS:
                raise DataError(f"{where}: image is {w}x{h}, over the {MAX_IMAGE_PIXELS} pixel limit "
                                "(decompression-bomb guard)")
            return np.array(im.convert("RGB"))  # writable: torch.from_numpy warns on read-only arrays
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{where}: image file not found") from None
    except Exception as exc:  # Pillow raises several exception types for corrupt data
        raise DataError(f"{where}: cannot decode the image ({type(exc).__name__}: {exc})") from exc


class TrainDataset(torch.utils.data.Dataset):
    """Base of every training dataset: ``(uint8 HWC RGB tensor, int label)`` items plus class statistics.

    Subclasses set ``labels`` (``int64`` array, one per item) and ``num_classes`` and implement
    :meth:`load_image` and :meth:`describe`.
    """

    labels: np.ndarray
    num_classes: int

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def load_image(self, index: int) -> np.ndarray:
        """Image ``index`` as an ``(H, W, 3)`` ``uint8`` RGB array."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} images")
        index %= n
        return torch.from_numpy(np.ascontiguousarray(self.load_image(index))), int(self.labels[index])

    def class_counts(self) -> np.ndarray:
        """Images per class, ``(num_classes,)`` integers."""
        return np.bincount(self.labels, minlength=self.num_classes)

    def describe(self) -> dict[str, Any]:
        """JSON-able provenance: kind, path, counts, seed and options."""
        raise NotImplementedError


class ImageFolder(TrainDataset):
    """``root/<identity>/<image>``: identity folders sorted by name get labels ``0 .. C-1``.

    Files with an extension in :data:`IMAGE_EXTENSIONS` are images (hidden files and other files are skipped);
    images are listed sorted by file name inside each class. An identity folder without any image, an image
    directly under ``root`` and a root without identity folders are errors naming the path. Images are decoded
    only when read (a corrupt one raises :class:`DataError` naming its file then); :meth:`verify` decodes all.
    """

    def __init__(self, root: str | Path, *, seed: int = 0) -> None:
        base = Path(root)
        if not base.is_dir():
            raise DataError(f"{base}: not a folder (expected root/<identity>/<image>)")
        self.root = str(base)
        self.seed = seed
        self.class_names: list[str] = []
        self.relpaths: list[str] = []
        labels: list[int] = []
        with os.scandir(base) as it:  # scandir: file types without one stat per entry (large trees)
            entries = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
        for entry in entries:
            if not entry.is_dir():
                if os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS:
                    raise DataError(f"{entry.path}: image directly under the root; expected root/<identity>/<image>")
                continue
            with os.scandir(entry.path) as it:
                files = sorted(f.name for f in it if os.path.splitext(f.name)[1].lower() in IMAGE_EXTENSIONS
                               and not f.name.startswith(".") and f.is_file())
            if not files:
                raise DataError(f"{entry.path}: class folder has no images (extensions "
                                f"{', '.join(IMAGE_EXTENSIONS)}); remove it or add its images")
            label = len(self.class_names)
            self.class_names.append(entry.name)
            self.relpaths.extend(f"{entry.name}/{f}" for f in files)
            labels.extend([label] * len(files))
        if not self.class_names:
            raise DataError(f"{base}: no class folders found (expected root/<identity>/<image>)")
        self.labels = np.asarray(labels, dtype=np.int64)
        self.num_classes = len(self.class_names)

    def path(self, index: int) -> Path:
        """The file of image ``index``."""
        return Path(self.root) / self.relpaths[index]

    def load_image(self, index: int) -> np.ndarray:
        p = self.path(index)
        return decode_image(p, str(p))

    def verify(self) -> None:
        """Decode every image once (slow on large trees): the first bad file raises :class:`DataError`."""
        for i in range(len(self)):
            self.load_image(i)

    def describe(self) -> dict[str, Any]:
        counts = self.class_counts()
        return {"kind": "image-folder", "path": self.root, "num_classes": self.num_classes,
                "num_images": len(self), "min_per_class": int(counts.min()), "max_per_class": int(counts.max()),
                "seed": self.seed, "options": {}}


def open_dataset(source: str | Path, *, seed: int = 0, **options: Any) -> TrainDataset:
    """The training dataset at ``source``.

    ``"synthetic"`` -> :class:`fr_bench.train.synthetic.SyntheticFaces` (train split; ``options`` go to it);
    a ``.rec`` file, or a folder holding ``train.rec`` (+ ``train.idx``, ``property``) ->
    :class:`fr_bench.train.recordio.RecordIODataset`; any other folder -> :class:`ImageFolder`.
    """
    if isinstance(source, str) and source == "synthetic":
        from fr_bench.train.synthetic import SyntheticFaces

        options.setdefault("split", "train")
        return SyntheticFaces(seed=seed, **options)
    path = Path(source)
    rec = path if path.suffix == ".rec" else path / "train.rec"
    if rec.is_file():
        from fr_bench.train.recordio import RecordIODataset

        return RecordIODataset(rec, seed=seed, **options)
    if path.suffix == ".rec":
        raise DataError(f"{path}: RecordIO file not found")
    if not path.exists():
        raise DataError(f"{path}: training data not found (a folder root/<identity>/<image>, a RecordIO pack "
                        "folder with train.rec + train.idx, or 'synthetic')")
    if options:
        raise TypeError(f"options {sorted(options)} do not apply to an ImageFolder tree")
    return ImageFolder(path, seed=seed)


def __getattr__(name: str) -> Any:
    """``SyntheticFaces`` and ``write_test_protocol`` are re-exported lazily (synthetic imports this module)."""
    if name in ("SyntheticFaces", "write_test_protocol"):
        from fr_bench.train import synthetic

        return getattr(synthetic, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ModelInputTransform:
    """Picklable callable built by :func:`make_transform`; see there."""

    def __init__(self, preprocessing: Preprocessing, *, train: bool, flip: bool, color_space: str = "RGB") -> None:
        self.preprocessing = preprocessing
        self.train = bool(train)
        self.flip = bool(flip)
        self.color_space = color_space

    def __call__(self, image: torch.Tensor | np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(image)
        if x.dtype != torch.uint8:
            raise TypeError(f"expected uint8 images, got {x.dtype}")
        single = x.ndim == 3
        batch = x.unsqueeze(0) if single else x
        if batch.ndim != 4 or batch.shape[-1] != 3:
            raise ValueError(f"expected (H, W, 3) or (N, H, W, 3) uint8 images, got {tuple(x.shape)}")
        if self.train and self.flip:
            mirror = torch.rand(batch.shape[0]) < 0.5
            if bool(mirror.any()):
                batch = torch.where(mirror.view(-1, 1, 1, 1).to(batch.device), batch.flip(2), batch)
        out = to_model_input(batch, self.preprocessing, color_space=self.color_space, channels_last=False)
        return out[0] if single else out

    def __repr__(self) -> str:
        return (f"ModelInputTransform(input_size={self.preprocessing.input_size}, train={self.train}, "
                f"flip={self.flip})")


def make_transform(
    preprocessing: Preprocessing | Mapping[str, Any], *, train: bool, flip: bool, color_space: str = "RGB"
) -> ModelInputTransform:
    """A callable: ``uint8`` RGB image ``(H, W, 3)`` (or batch ``(N, H, W, 3)``) -> float ``(3, H', W')`` (or
    ``(N, 3, H', W')``) model input.

    Steps: with ``train and flip``, a horizontal flip with probability 1/2 per image (``torch.rand``, so DataLoader
    worker seeding governs it); then :func:`fr_bench.models.to_model_input`, the same code evaluation applies to
    the checkpoint's recorded preprocessing: the resize to ``preprocessing.input_size`` when the stored size
    differs (bilinear, antialiased: :func:`fr_bench.models.preprocess.resize_images`), channel order,
    ``(x - mean) / std``.
    """
    prep = preprocessing if isinstance(preprocessing, Preprocessing) else Preprocessing.from_dict(preprocessing)
    return ModelInputTransform(prep, train=train, flip=flip, color_space=color_space)
