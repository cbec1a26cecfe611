"""Embedders backed by an ONNX file, run with onnxruntime (CUDA provider on a CUDA device when available).

Models exported with a fixed batch of 1 (SFace is one) are made batch-dynamic in memory when the ``onnx`` package
is installed and a check on a random batch of 3 gives the same output as three single runs; otherwise they run one
image at a time. The input layout (NCHW or NHWC) is read from the graph's input shape; the first output is taken as
the embedding. A graph with a fixed height and width must match the input contract's ``input_size`` (else a clear
error naming the fixed size).

Device: on a CUDA device the CUDA execution provider is asked for; when the session runs without it (onnxruntime
built without CUDA, or the provider failed to start) the embedder warns and reports ``device`` = cpu (the device
really used; ``requested_device`` keeps what was asked).

CPU memory: the session is created with onnxruntime's CPU memory arena off (``enable_cpu_mem_arena=False``): the
arena keeps the peak of every batch size it has seen; without it the peak RSS follows the current batch (figures in
bench/RESULTS.md).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from fr_bench.models.base import Embedder, ModelLoadError, model_fingerprint
from fr_bench.models.preprocess import Preprocessing, to_model_input


def _providers(device: torch.device) -> list:
    import onnxruntime as ort

    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        return [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


#: onnxruntime's CPU memory arena (off: see the module docstring).
CPU_MEM_ARENA = False


def _session(model: str | bytes, providers):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # SFace alone prints one warning per initializer otherwise
    opts.enable_cpu_mem_arena = CPU_MEM_ARENA
    return ort.InferenceSession(model, opts, providers=providers)


def _dynamic_batch_bytes(path: str) -> bytes | None:
    """The model with a symbolic batch dimension, or None when the ``onnx`` package is absent."""
    try:
        import onnx
    except ImportError:
        return None
    proto = onnx.load(path)
    for value in list(proto.graph.input[:1]) + list(proto.graph.output[:1]):
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "batch"
    return proto.SerializeToString()


class OnnxEmbedder(Embedder):
    """An onnxruntime session fed float32 numpy batches."""

    def __init__(
        self,
        path: str,
        *,
        name: str,
        content_sha256: str,
        prep: Preprocessing,
        device: str | torch.device = "cpu",
        embedding_size: int | None = None,
        notes: list[str] | None = None,
    ) -> None:
        try:
            import onnxruntime  # noqa: F401
        except ImportError as exc:
            raise ModelLoadError(f"{path}: ONNX models need onnxruntime (pip install onnxruntime)") from exc
        self.path = path
        self.name = name
        self.format = "onnx"
        self.prep = prep
        self.device = torch.device(device)
        self.content_sha256 = content_sha256
        self.fingerprint = model_fingerprint(content_sha256, prep)
        self.notes = list(notes or [])
        providers = _providers(self.device)
        try:
            self.session = _session(path, providers)
        except Exception as exc:
            raise ModelLoadError(f"{path}: onnxruntime cannot load this file: {exc}") from exc
        self._check_device()
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        shape = list(inp.shape)
        if len(shape) != 4:
            raise ModelLoadError(f"{path}: expected a 4-d image input, got input {inp.name!r} of shape {shape}")
        self.nhwc = shape[3] == 3 and shape[1] != 3
        self._check_fixed_size(shape)
        self.max_batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
        if self.max_batch == 1:
            self._try_dynamic_batch(providers)
        try:
            out = self._forward(torch.full((2, *prep.input_size, 3), 128, dtype=torch.uint8), "RGB", False)
        except Exception as exc:
            h, w = prep.input_size
            raise ModelLoadError(f"{path}: a test run on a (2, 3, {h}, {w}) batch failed: {exc}") from exc
        if out.ndim != 2:
            raise ModelLoadError(f"{path}: expected (N, D) features, got shape {tuple(out.shape)}")
        if embedding_size is not None and int(embedding_size) != out.shape[1]:
            raise ModelLoadError(f"{path}: embedding_size={embedding_size} given but the model outputs {out.shape[1]}")
        self.embedding_size = int(out.shape[1])

    @property
    def input_device(self) -> torch.device:
        return torch.device("cpu")

    def _check_device(self) -> None:
        """``device`` = where the session really runs: CPU, with a warning, when CUDA was asked for but is absent."""
        self.providers = self.session.get_providers()
        if self.device.type == "cuda" and "CUDAExecutionProvider" not in self.providers:
            warnings.warn(f"model {self.name}: device {self.device} asked for, but onnxruntime runs it on CPU "
                          f"(providers: {', '.join(self.providers)}); the result records device cpu", stacklevel=4)
            self.notes.append(f"asked for {self.device}; onnxruntime has no CUDA provider here: ran on CPU")
            self._requested_device, self.device = self.device, torch.device("cpu")

    def _check_fixed_size(self, shape: list) -> None:
        """A graph with a fixed input height and width takes only that size: say so instead of failing in a run."""
        h, w = (shape[1], shape[2]) if self.nhwc else (shape[2], shape[3])
        if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0 and (h, w) != self.prep.input_size:
            raise ModelLoadError(
                f"{self.path}: model {self.name} has a fixed {h}x{w} input (height x width) in its graph; the input "
                f"contract says input_size={self.prep.input_size[0]}x{self.prep.input_size[1]} "
                f"({self.prep.source}): pass input_size={h}x{w} or leave it unset"
            )

    def _try_dynamic_batch(self, providers) -> None:
        data = _dynamic_batch_bytes(self.path)
        if data is None:
            self.notes.append("fixed batch of 1 in the graph: images run one at a time (install `onnx` to batch)")
            return
        try:
            dyn = _session(data, providers)
            x = np.random.default_rng(0).uniform(0, 255, (3, *self._input_shape_hw())).astype(np.float32)
            single = np.concatenate([self.session.run(None, {self.input_name: x[i : i + 1]})[0] for i in range(3)])
            batched = dyn.run(None, {self.input_name: x})[0]
            ok = batched.shape == single.shape and np.allclose(batched, single, rtol=1e-4, atol=1e-4)
        except Exception:
            ok = False
        if ok:
            self.session, self.max_batch = dyn, None
            self.notes.append("graph exported with batch 1: batch dimension made dynamic (checked on 3 images)")
        else:
            self.notes.append("graph exported with batch 1 and not batchable: images run one at a time")

    def _input_shape_hw(self) -> tuple[int, int, int]:
        h, w = self.prep.input_size
        return (h, w, 3) if self.nhwc else (3, h, w)

    def _forward(self, batch: torch.Tensor, color_space: str, amp: bool | str) -> torch.Tensor:
        x = to_model_input(batch.cpu(), self.prep, color_space=color_space, channels_last=False)
        if self.nhwc:
            x = x.permute(0, 2, 3, 1)
        x = np.ascontiguousarray(x.numpy(), dtype=np.float32)
        step = self.max_batch or len(x)
        parts = []
        for i in range(0, len(x), step):
            chunk = x[i : i + step]
            n = len(chunk)
            if self.max_batch and n < step:  # a fixed batch larger than what is left: pad, then drop the padding
                chunk = np.concatenate([chunk, np.zeros((step - n, *chunk.shape[1:]), np.float32)])
            parts.append(self.session.run(None, {self.input_name: chunk})[0][:n])
        out = np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
        return torch.from_numpy(out.reshape(len(x), -1) if out.ndim > 2 else out)
