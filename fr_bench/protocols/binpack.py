"""Reader for the insightface ``.bin`` verification packs (lfw.bin, cfp_fp.bin, agedb_30.bin, ...).

A pack is a pickle of ``(bins, issame_list)``: ``bins`` holds 2*N encoded images (JPEG/PNG bytes, as ``bytes``,
``bytearray`` or a ``uint8`` numpy array), images ``2k`` and ``2k+1`` forming pair ``k``; ``issame_list`` holds the
N labels. Packs written under Python 2 hold ``str`` byte strings, hence ``encoding="bytes"``.

Security note: unpickling can run arbitrary code. Packs are read with :class:`RestrictedUnpickler`, which resolves
only the few globals needed to rebuild the containers above (``bytearray``, numpy ``ndarray``/``dtype`` and
their reconstructors, numpy scalars for ``numpy.bool_`` labels, ``_codecs.encode`` used by protocol-2 ``bytes``) and
refuses every other global with an error naming the file and the refused name. ``numpy.ndarray`` resolves to a
token accepted only by ``_reconstruct``: called directly with a buffer, the class would build object arrays whose
pointers come from the file. Each allowed callable checks its arguments (:class:`_Guards`): pack dtypes only
(uint8, bool, small integers; never ``object``), ``bytearray`` of bytes or a latin-1 str but never of a size,
``_codecs.encode`` with latin-1 only, and no array larger than the file itself -- 36 crafted bytes cannot allocate
gigabytes. Never open a pack from an untrusted source with plain ``pickle.load``.
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


#: The dtypes a pack's arrays and scalars have: uint8 image bytes, bool or small-integer labels, and ``object`` for
#: an array holding the image items (``b`` is the placeholder dtype numpy's pickles give ``_reconstruct`` before
#: ``__setstate__`` sets the real one). An object array's items can only come from a pickled list of objects this
#: unpickler built: numpy refuses raw bytes for them, and ``numpy.ndarray`` itself cannot be called.
_PACK_DTYPES = frozenset(np.dtype(t) for t in ("u1", "i1", "b1", "i2", "u2", "i4", "u4", "i8", "u8", "O"))
_LATIN1 = ("latin1", "latin-1", "iso-8859-1", "iso8859-1")


class _Guards:
    """The callables a pack's globals resolve to: each checks its arguments and bounds what it allocates by the
    file's size (``limit``), so a crafted pickle cannot make ``bytearray(10**9)`` or an array of any shape."""

    def __init__(self, source: str, limit: int) -> None:
        multiarray = ("numpy._core.multiarray", "numpy.core.multiarray")
        numeric = ("numpy._core.numeric", "numpy.core.numeric")
        self.source, self.limit = source, limit
        self._reconstruct_impl = _numpy_attr(multiarray, "_reconstruct")
        self._scalar_impl = _numpy_attr(multiarray, "scalar")
        self._frombuffer_impl = _numpy_attr(numeric, "_frombuffer")

    def refuse(self, what: str) -> ProtocolError:
        return ProtocolError(f"{self.source}: refused {what}: a .bin verification pack holds only image bytes and "
                             "labels, so this file is not one (or was tampered with)")

    def _dtype_of(self, value: Any) -> np.dtype:
        if isinstance(value, np.dtype):
            dt = value
        elif isinstance(value, (str, bytes)) and len(value) <= 4:
            try:
                dt = np.dtype(value.decode("latin-1") if isinstance(value, bytes) else value)
            except TypeError as exc:
                raise self.refuse(f"dtype {value!r}") from exc
        else:
            raise self.refuse(f"dtype {value!r}")
        if dt not in _PACK_DTYPES:
            raise self.refuse(f"numpy dtype {dt} (a pack's ndarrays hold uint8 image bytes or bool/integer labels)")
        return dt

    def _size(self, shape: Any, dt: np.dtype) -> int:
        if isinstance(shape, (int, np.integer)):
            shape = (shape,)
        if not isinstance(shape, tuple) or len(shape) > 8 or not all(isinstance(n, (int, np.integer)) and n >= 0
                                                                      for n in shape):
            raise self.refuse(f"array shape {shape!r}")
        nbytes = dt.itemsize
        for n in shape:
            nbytes *= int(n)
        if nbytes > self.limit:
            raise self.refuse(f"an array of shape {shape} ({nbytes:,} bytes) from a {self.limit:,}-byte file")
        return nbytes

    def dtype(self, obj: Any, align: bool = False, copy: bool = True) -> np.dtype:
        """``numpy.dtype``: pack dtypes only, always a copy (a BUILD on it never touches numpy's own)."""
        return np.dtype(self._dtype_of(obj).str, align=False, copy=True)

    def bytearray(self, source: Any = b"", encoding: Any = None, *rest: Any) -> bytearray:
        """``bytearray`` of bytes (protocol 3+) or of a latin-1 str (protocol 2); never of a size."""
        if isinstance(source, (bytes, bytearray)) and encoding is None and not rest:
            return bytearray(source)
        if isinstance(source, str) and isinstance(encoding, str) and encoding.lower() in _LATIN1 and not rest:
            return bytearray(source, "latin-1")
        raise self.refuse(f"bytearray({type(source).__name__}"
                          + (f", {encoding!r}" if encoding is not None else "") + ")")

    def encode(self, obj: Any, encoding: Any = "utf-8", *rest: Any) -> bytes:
        """``_codecs.encode``: a protocol-2 ``bytes`` is a latin-1 str; no other codec."""
        if isinstance(obj, str) and isinstance(encoding, str) and encoding.lower() in _LATIN1 and not rest:
            return obj.encode("latin-1")
        raise self.refuse(f"_codecs.encode({type(obj).__name__}, {encoding!r})")

    def reconstruct(self, subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
        """``_reconstruct(numpy.ndarray, shape, dtype)``: the empty array a pickled array starts from."""
        if subtype is not _NDARRAY:
            raise self.refuse(f"_reconstruct of {subtype!r}; only numpy.ndarray is allowed")
        dt = self._dtype_of(dtype)
        self._size(shape, dt)
        return self._reconstruct_impl(np.ndarray, shape, dtype)

    def scalar(self, dtype: Any, data: Any = None) -> Any:
        """``scalar(dtype, bytes)``: a numpy bool or integer label."""
        dt = self._dtype_of(dtype)
        if dt.hasobject or not isinstance(data, bytes) or len(data) != dt.itemsize:
            raise self.refuse(f"a numpy scalar of {dt} from {type(data).__name__}")
        return self._scalar_impl(dt, data)

    def frombuffer(self, buf: Any, dtype: Any, shape: Any, order: Any = "C") -> np.ndarray:
        """``_frombuffer`` (protocol 5 arrays): a view of bytes read from the file, of a matching shape."""
        dt = self._dtype_of(dtype)
        if not isinstance(buf, (bytes, bytearray)) or self._size(shape, dt) != len(buf) or order not in ("C", "F"):
            raise self.refuse(f"_frombuffer of shape {shape!r} over {type(buf).__name__}")
        return self._frombuffer_impl(buf, dt, shape, order)


def _allowed_globals(source: str, limit: int) -> dict[tuple[str, str], Any]:
    guards = _Guards(source, limit)
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): _NDARRAY,
        ("numpy", "dtype"): guards.dtype,
        ("builtins", "bytearray"): guards.bytearray,
        ("__builtin__", "bytearray"): guards.bytearray,
        ("_codecs", "encode"): guards.encode,
    }
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        allowed[(module, "_reconstruct")] = guards.reconstruct
        allowed[(module, "scalar")] = guards.scalar
    for module in ("numpy._core.numeric", "numpy.core.numeric"):
        allowed[(module, "_frombuffer")] = guards.frombuffer
    return allowed


def _bytes_left(file: Any) -> int:
    """How many bytes ``file`` holds from its current position (the default bound on what a pack may build)."""
    pos = file.tell()
    end = file.seek(0, 2)
    file.seek(pos)
    return max(0, end - pos)


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals a ``.bin`` pack needs (see the module's security note), each
    guarded so that nothing it builds is larger than the file (``limit`` bytes)."""

    def __init__(self, file, *, source: str, limit: int | None = None, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self.source = source
        self.allowed = _allowed_globals(source, _bytes_left(file) if limit is None else int(limit))

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
            data = RestrictedUnpickler(f, source=str(p), limit=p.stat().st_size, encoding="bytes").load()
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
