"""Reader for the insightface ``.bin`` verification packs (lfw.bin, cfp_fp.bin, agedb_30.bin, ...).

A pack is a pickle of ``(bins, issame_list)``: ``bins`` holds 2*N encoded images (JPEG/PNG bytes, as ``bytes``,
``bytearray`` or a ``uint8`` numpy array), images ``2k`` and ``2k+1`` forming pair ``k``; ``issame_list`` holds the
N labels. Packs written under Python 2 hold ``str`` byte strings, hence ``encoding="bytes"``.

Security note: unpickling can run arbitrary code. Packs are read with :class:`RestrictedUnpickler`, which resolves
only the few globals needed to rebuild the containers above (``bytearray``, numpy ``ndarray``/``dtype`` and
their reconstructors, numpy scalars for ``numpy.bool_`` labels, ``_codecs.encode`` used by protocol-2 ``bytes``) and
refuses every other global with an error naming the file and the refused name. ``numpy.ndarray`` resolves to a
token accepted only by ``_reconstruct``: called directly with a buffer, the class would build object arrays whose
pointers come from the file. Never open a pack from an
untrusted source with plain ``pickle.load``.
"""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from fr_bench.protocols.base import ProtocolError


def _numpy_attr(names: tuple[str, ...], attr: str) -> Any:
    """``attr`` from the first importable numpy module among ``names`` (numpy 2 renamed ``core`` to ``_core``)."""
    for name in names:
        try:
            return getattr(importlib.import_module(name), attr)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"numpy provides none of {names} . {attr}")


class _NdarrayName:
    """What the global ``numpy.ndarray`` resolves to: a token, not the class.

    A pickled array names ``numpy.ndarray`` only as the first argument of ``_reconstruct``. Handing out the class
    itself would let a crafted pickle CALL it, ``numpy.ndarray(shape, object, buffer)``, which makes an object array
    whose pointers are bytes of the file (memory corruption, a crash or worse, on first access)."""

    def __repr__(self) -> str:
        return "<numpy.ndarray, as named in a .bin pack>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise pickle.UnpicklingError("refused to call numpy.ndarray directly (it would build arrays from raw file "
                                     "bytes); a .bin pack's arrays are rebuilt with _reconstruct or _frombuffer")


_NDARRAY = _NdarrayName()


def _guarded_reconstruct(reconstruct: Any) -> Any:
    def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
        if subtype is not _NDARRAY:
            raise pickle.UnpicklingError(f"refused: _reconstruct of {subtype!r}; only numpy.ndarray is allowed")
        return reconstruct(np.ndarray, shape, dtype)

    return _reconstruct


def _allowed_globals() -> dict[tuple[str, str], Any]:
    multiarray = ("numpy._core.multiarray", "numpy.core.multiarray")
    numeric = ("numpy._core.numeric", "numpy.core.numeric")
    reconstruct = _guarded_reconstruct(_numpy_attr(multiarray, "_reconstruct"))
    scalar = _numpy_attr(multiarray, "scalar")
    frombuffer = _numpy_attr(numeric, "_frombuffer")
    import _codecs

    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): _NDARRAY,
        ("numpy", "dtype"): np.dtype,
        ("builtins", "bytearray"): bytearray,
        ("__builtin__", "bytearray"): bytearray,
        ("_codecs", "encode"): _codecs.encode,
    }
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        allowed[(module, "_reconstruct")] = reconstruct
        allowed[(module, "scalar")] = scalar
    for module in ("numpy._core.numeric", "numpy.core.numeric"):
        allowed[(module, "_frombuffer")] = frombuffer
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals a ``.bin`` pack needs (see the module's security note)."""

    def __init__(self, file, *, source: str, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self.source = source
        self.allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        obj = self.allowed.get((module, name))
        if obj is None:
            raise ProtocolError(
                f"{self.source}: refused to unpickle the global {module}.{name}: a .bin verification pack holds only "
                "image bytes and labels, so this file is not one (or was tampered with). It was not executed."
            )
        return obj


def _as_label(value: Any) -> bool | None:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and int(value) in (0, 1):
        return bool(value)
    return None


def read_bin(
    path: str | Path, expected_pairs: int | None = None
) -> tuple[list[bytes | bytearray | np.ndarray], np.ndarray]:
    """Read a ``.bin`` pack: ``(images, issame)`` with ``images`` the 2*N encoded images (not decoded) and
    ``issame`` a length-N ``bool`` array.

    Validates the layout: a 2-tuple, 2*N image items of type ``bytes``/``bytearray``/``uint8`` array, N boolean
    labels, and N == ``expected_pairs`` when given. Errors name the file.
    """
    p = Path(path)
    if not p.is_file():
        raise ProtocolError(f"{p}: .bin pack not found")
    try:
        with open(p, "rb") as f:
            data = RestrictedUnpickler(f, source=str(p), encoding="bytes").load()
    except ProtocolError:
        raise
    except Exception as exc:
        raise ProtocolError(f"{p}: not a readable .bin pack (pickle error: {exc})") from exc
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ProtocolError(f"{p}: expected a pickled 2-tuple (images, issame_list), got {type(data).__name__}")
    bins, issame_raw = data
    if isinstance(bins, np.ndarray) and bins.dtype == object:
        bins = list(bins)
    if not isinstance(bins, (list, tuple)):
        raise ProtocolError(f"{p}: the image list must be a list, got {type(bins).__name__}")
    labels = []
    for k, value in enumerate(np.asarray(issame_raw).tolist() if isinstance(issame_raw, np.ndarray) else issame_raw):
        label = _as_label(value)
        if label is None:
            raise ProtocolError(f"{p}: label {k} of issame_list is {value!r}; expected a boolean")
        labels.append(label)
    issame = np.asarray(labels, dtype=bool)
    n = issame.size
    if len(bins) != 2 * n:
        raise ProtocolError(
            f"{p}: {len(bins)} images for {n} labels; a pack holds 2 images per pair (expected {2 * n})"
        )
    if expected_pairs is not None and n != expected_pairs:
        raise ProtocolError(f"{p}: {n} pairs, expected {expected_pairs} for this protocol")
    images = list(bins)
    for i, item in enumerate(images):
        if isinstance(item, (bytes, bytearray)):
            continue
        if isinstance(item, np.ndarray) and item.dtype == np.uint8:
            continue
        kind = f"{type(item).__name__}" + (f" of {item.dtype}" if isinstance(item, np.ndarray) else "")
        raise ProtocolError(
            f"{p}: image {i} is a {kind}; expected encoded image bytes (bytes, bytearray or uint8 array)"
        )
    return images, issame
