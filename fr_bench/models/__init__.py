"""Models: ``load_model(spec) -> Embedder`` for any checkpoint a user has, and the backbone registry.

* :func:`load_model` -- built-in names (``"sface"``), ONNX, TorchScript, fr_bench checkpoints, plain state dicts of
  a registered architecture (``arch="iresnet50"``), ``"module:function"`` callables; the input-contract defaults per
  format are tabled in :mod:`fr_bench.models.loader`.
* :class:`Embedder` -- ``embedder(uint8 NHWC RGB batch) -> float32 (N, D)`` raw features, with ``name``,
  ``format``, ``fingerprint``, ``preprocessing``, ``embedding_size``, ``device``, ``channel_order``.
* :func:`list_archs`, :func:`create_backbone`, :func:`register_arch` -- architectures shared with training.
* :func:`save_checkpoint` -- the self-describing checkpoint that training writes and ``load_model`` reads.

This package never imports :mod:`fr_bench.protocols` (house rule): the extractor connects the two.
"""

from fr_bench.models.backbones import create_backbone, list_archs, register_arch
from fr_bench.models.base import Embedder, ModelLoadError, NonFiniteOutputError, amp_dtype, file_sha256
from fr_bench.models.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, save_checkpoint
from fr_bench.models.loader import BUILTIN_MODELS, KNOWN_ONNX, load_model
from fr_bench.models.preprocess import Preprocessing, to_model_input

__all__ = [
    "BUILTIN_MODELS",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "KNOWN_ONNX",
    "Embedder",
    "ModelLoadError",
    "NonFiniteOutputError",
    "Preprocessing",
    "amp_dtype",
    "create_backbone",
    "file_sha256",
    "list_archs",
    "load_model",
    "register_arch",
    "save_checkpoint",
    "to_model_input",
]
