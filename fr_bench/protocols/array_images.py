""":class:`ArrayImageSource`: an image list on disk held as column arrays (IJB's 469k images, MegaFace, K-FACE)."""

from __future__ import annotations

import os

import numpy as np

from fr_bench.protocols.base import CROP_SIZE, ImageRef, ImageSource, landmarks_digest


class ArrayImageSource(ImageSource):
    """Images on disk held as column arrays: ``root/rel_paths[i]``, warped with ``landmarks[i]`` (5x2) if given.

    ``rel_paths`` is kept as a fixed-width unicode array (no Python object per image: 469k IJB-C images are two
    arrays) and each :class:`ImageRef` is built on demand; picklable for DataLoader workers. Like
    :class:`fr_bench.protocols.images.FileImageSource` (same decoding and checks), which holds a Python list instead.
    With ``landmarks=None`` every image must already be an aligned 112x112 crop (checked at load).
    """

    def __init__(self, root: str | os.PathLike, rel_paths: np.ndarray, landmarks: np.ndarray | None = None, *,
                 unaligned_hint: str = "") -> None:
        self.root = str(root)
        self.rel_paths = np.asarray(rel_paths, dtype=str)
        self.landmarks = None if landmarks is None else np.asarray(landmarks, dtype=np.float32).reshape(-1, 5, 2)
        if self.landmarks is not None and len(self.landmarks) != len(self.rel_paths):
            raise ValueError(f"{len(self.rel_paths)} images but {len(self.landmarks)} landmark rows")
        self.unaligned_hint = unaligned_hint

    def __len__(self) -> int:
        return len(self.rel_paths)

    def ref(self, i: int) -> ImageRef:
        rel = str(self.rel_paths[i])
        lm = None if self.landmarks is None else tuple((float(x), float(y)) for x, y in self.landmarks[i])
        return ImageRef(key=rel, source=os.path.join(self.root, rel), landmarks=lm)

    def keys(self) -> list[str]:
        return self.rel_paths.tolist()

    def recipe_digest(self) -> str:
        """The landmarks every image is warped with (see :meth:`ImageSource.recipe_digest`)."""
        return landmarks_digest(self.landmarks)

    def load(self, i: int) -> np.ndarray:
        from fr_bench.protocols.images import check_crop, read_image_file

        path = os.path.join(self.root, str(self.rel_paths[i]))
        img = read_image_file(path)
        if self.landmarks is None:
            return check_crop(img, path, self.unaligned_hint)
        from fr_bench.align import align_face

        return align_face(img, self.landmarks[i], size=CROP_SIZE)
