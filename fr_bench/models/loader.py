"""``load_model(spec)``: any checkpoint a user has -> an :class:`~fr_bench.models.base.Embedder`.

Spec forms, tried in this order:

1. a built-in name (``"sface"``), found under ``reference_models/`` of the checkout;
2. an existing file: ``*.onnx`` (onnxruntime); a TorchScript archive (``torch.jit.save``); an fr_bench checkpoint
   (:mod:`fr_bench.models.checkpoint`); a plain state dict of a registered architecture, given with ``arch=``;
3. ``"package.module:function"``: a Python callable returning an ``nn.Module`` (keyword arguments go to it);
4. an ``nn.Module`` object (in-memory; fingerprinted by its weights).

Input contract (see :mod:`fr_bench.models.preprocess`) per format, unless the user passes ``channel_order``,
``mean``, ``std`` or ``input_size`` (then ``source`` says "user flag"):

============================== ======= ====== ====== ================================================ =======
format                         order   mean   std    source                                           assumed
============================== ======= ====== ====== ================================================ =======
known ONNX (SFace, by sha256)  RGB     0      1      model card (normalisation is inside the graph)   no
other ONNX                     RGB     127.5  127.5  default for format onnx                          YES
TorchScript                    RGB     127.5  127.5  default for format torchscript                   YES
fr_bench checkpoint            stored  stored stored checkpoint                                       no
state dict, iresnet*/mbf       RGB     127.5  127.5  insightface arcface_torch convention             no
state dict, other arch         RGB     127.5  127.5  default for format state_dict                    YES
callable / nn.Module           RGB     127.5  127.5  default for format callable                      YES
============================== ======= ====== ====== ================================================ =======

All are fed the 112x112 crops, resized to the contract's ``input_size`` when it differs (an ONNX graph with a
static size imposes its own). ``assumed`` rows are flagged in
``embedder.preprocessing`` so reports can say the contract was not vouched for by the model.
"""

from __future__ import annotations

import importlib
import inspect
import os
import typing
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fr_bench._paths import reference_models_dir
from fr_bench.models import checkpoint as ckpt
from fr_bench.models.backbones import create_backbone, iresnet, list_archs
from fr_bench.models.backbones.groupface import enable_score_rows
from fr_bench.models.base import Embedder, ModelLoadError, file_sha256, state_sha256
from fr_bench.models.onnx_model import OnnxEmbedder
from fr_bench.models.preprocess import Preprocessing, with_overrides
from fr_bench.models.torch_model import TorchEmbedder

#: Built-in model names -> path under reference_models/.
BUILTIN_MODELS: dict[str, str] = {"sface": "sface/face_recognition_sface_2021dec.onnx"}

#: ONNX files we know by content: sha256 -> (name, input contract from the model card).
KNOWN_ONNX: dict[str, tuple[str, Preprocessing]] = {
    "0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79": (
        "sface",
        Preprocessing(mean=0.0, std=1.0, channel_order="RGB",
                      source="model card: SFace (OpenCV Zoo 2021dec), RGB raw 0..255, normalised in the graph"),
    ),
}

ARCFACE_CONVENTION = "insightface arcface_torch convention: RGB, (x/255 - 0.5) / 0.5"
_ARCFACE_ARCHS = set(iresnet.STAGE_BLOCKS) | {"mobilefacenet", "mobilefacenet_large", "r18", "r34", "r50", "r100",
                                              "r200", "mbf", "mbf_large"}
_TRAINING_KEYS = ("state_dict", "model", "model_state_dict", "backbone", "net", "optimizer", "epoch", "ema")

#: Model options every model kind takes (``--model-option KEY=VALUE``): the input contract and two checks.
CONTRACT_OPTIONS = ("channel_order", "mean", "std", "input_size", "embedding_size", "name")


def _keywords(func: Any) -> set[str] | None:
    """The keyword arguments ``func`` accepts (None: any, or cannot tell). A factory taking ``**kwargs`` that
    returns a class (``-> IResNet``) is read through to the class's keywords with defaults."""
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return None
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if not any(p.kind == p.VAR_KEYWORD for p in params):
        return names
    try:
        target = typing.get_type_hints(func).get("return")
    except Exception:
        return None
    if not inspect.isclass(target):
        return None
    inner = inspect.signature(target).parameters.values()
    if any(p.kind == p.VAR_KEYWORD for p in inner):
        return None
    return names | {p.name for p in inner if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                    and p.default is not p.empty}


def _check_options(kwargs: Mapping[str, Any], accepted: set[str] | None, where: str, what: str = "") -> None:
    """A one-line :class:`ModelLoadError` for model options this model kind does not take, listing the valid keys."""
    if accepted is None or not set(kwargs) - accepted:
        return
    unknown = ", ".join(repr(k) for k in sorted(set(kwargs) - accepted))
    extra = f"; {', '.join(sorted(accepted))} ({what})" if accepted else ""
    raise ModelLoadError(f"{where}: unknown model option {unknown}; valid keys: {', '.join(CONTRACT_OPTIONS)} "
                         f"(input contract){extra}")


def _arch_keywords(arch: str) -> set[str] | None:
    from fr_bench.models import backbones

    factory = getattr(backbones, "_REGISTRY", {}).get(arch)
    return _keywords(factory) if factory is not None else None


def _assumed(fmt: str) -> Preprocessing:
    return Preprocessing(source=f"default for format {fmt} (ASSUMED: pass channel_order/mean/std to set it)",
                         assumed=True)


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in z.namelist())


def _guess_arch(state: Mapping[str, Any]) -> str | None:
    """The registered architecture whose block counts match the keys (only to make error messages useful)."""
    counts = []
    for stage in range(1, 5):
        idx = {int(k.split(".")[1]) for k in state if k.startswith(f"layer{stage}.") and k.split(".")[1].isdigit()}
        counts.append(max(idx) + 1 if idx else 0)
    for name, blocks in iresnet.STAGE_BLOCKS.items():
        if tuple(counts) == blocks:
            return name
    if any(k.startswith("conv_sep.") for k in state):
        return "mobilefacenet or mobilefacenet_large"
    return None


def _mismatch_report(model: nn.Module, state: Mapping[str, torch.Tensor], limit: int = 8) -> str:
    want = model.state_dict()
    missing = [k for k in want if k not in state]
    unexpected = [k for k in state if k not in want]
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(want[k].shape)}"
              for k in want if k in state and hasattr(state[k], "shape") and state[k].shape != want[k].shape]

    def listing(title: str, items: list[str]) -> str:
        if not items:
            return ""
        more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
        return f"\n  {len(items)} {title}: {', '.join(items[:limit])}{more}"

    return listing("missing", missing) + listing("unexpected", unexpected) + listing("shape mismatches", shapes)


def _build_from_state(
    state: Mapping[str, Any], arch: str, arch_kwargs: Mapping[str, Any], where: str
) -> tuple[nn.Module, list[str]]:
    """The backbone ``arch`` with ``state`` loaded strictly; strips a DataParallel ``module.`` prefix."""
    notes: list[str] = []
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
        notes.append("stripped the 'module.' prefix (DataParallel/DDP) from every key")
    _check_options(arch_kwargs, _arch_keywords(arch), where, f"{arch} constructor")
    try:
        model = create_backbone(arch, **dict(arch_kwargs))
    except KeyError as exc:
        raise ModelLoadError(f"{where}: {exc.args[0]}") from exc
    except (TypeError, ValueError) as exc:
        raise ModelLoadError(f"{where}: cannot build arch={arch!r} with {dict(arch_kwargs)}: {exc}") from exc
    report = _mismatch_report(model, state)
    if report:
        guess = _guess_arch(state)
        hint = f"\n  the keys look like {guess}" if guess and guess != arch else ""
        if any(k.startswith("module.") for k in state):
            hint += "\n  some keys start with 'module.': save the unwrapped model's state_dict()"
        raise ModelLoadError(f"{where}: weights do not fit arch={arch!r}:{report}{hint}")
    model.load_state_dict(state, strict=True)
    return model, notes


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelLoadError(
            f"{path}: not a plain state dict, fr_bench checkpoint or TorchScript file ({exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}). A pickled whole model is not loaded (unpickling runs "
            "arbitrary code): save `model.state_dict()` and pass arch=..., or `torch.jit.script(model).save(...)`, "
            "or export to ONNX"
        ) from exc


def _from_file(path: Path, arch: str | None, device: str, overrides: dict[str, Any],
               embedding_size: int | None, name: str | None, kwargs: dict[str, Any]) -> Embedder:
    if path.suffix.lower() == ".onnx":
        _check_options(kwargs, set(), str(path))
        sha = file_sha256(path)
        known_name, default = KNOWN_ONNX.get(sha, (None, _assumed("onnx")))
        return OnnxEmbedder(str(path), name=name or known_name or path.stem, content_sha256=sha,
                            prep=with_overrides(default, **overrides), device=device, embedding_size=embedding_size)
    if _is_torchscript(path):
        _check_options(kwargs, set(), str(path))
        try:
            with warnings.catch_warnings():  # torch 2.9+ marks TorchScript deprecated; it is still a user format
                warnings.simplefilter("ignore", DeprecationWarning)
                module = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:
            raise ModelLoadError(f"{path}: looks like TorchScript but torch.jit.load failed: {exc}") from exc
        return TorchEmbedder(module, name=name or path.stem, format="torchscript", content_sha256=file_sha256(path),
                             prep=with_overrides(_assumed("torchscript"), **overrides), device=device,
                             embedding_size=embedding_size)
    obj = _torch_load(path)
    if ckpt.is_checkpoint(obj):
        try:
            ckpt.validate_checkpoint(obj, str(path))
        except ValueError as exc:
            raise ModelLoadError(str(exc)) from exc
        if arch is not None and arch != obj["arch"]:
            raise ModelLoadError(f"{path}: checkpoint is arch {obj['arch']!r} but arch={arch!r} was given")
        _check_options(kwargs, _arch_keywords(obj["arch"]), str(path), f"{obj['arch']} constructor")
        model, notes = _build_from_state(obj["state_dict"], obj["arch"], {**obj["arch_kwargs"], **kwargs}, str(path))
        prep = with_overrides(Preprocessing.from_dict(obj["preprocessing"], source="checkpoint"), **overrides)
        score = enable_score_rows(model)  # a model that brings its own score (GroupFace): rows for that score
        # `frbench train` writes OUT/checkpoint.pt: name it after its run folder, so two runs never share a name
        default_name = path.parent.name if path.stem == "checkpoint" and path.parent.name else path.stem
        embedder = TorchEmbedder(model, name=name or default_name, format="fr_bench-checkpoint",
                                 content_sha256=file_sha256(path), prep=prep, device=device, notes=notes,
                                 embedding_size=None if score else embedding_size or obj.get("embedding_size"))
        embedder.score = score
        return embedder
    if not isinstance(obj, Mapping):
        raise ModelLoadError(f"{path}: holds a {type(obj).__name__}, expected a state dict (name -> tensor)")
    if not all(isinstance(v, torch.Tensor) for v in obj.values()):
        found = [k for k in obj if k in _TRAINING_KEYS]
        raise ModelLoadError(
            f"{path}: looks like a full training checkpoint (top-level keys: {', '.join(map(str, list(obj)[:10]))}), "
            f"not a backbone state dict. Save the backbone's weights alone, e.g. "
            f"`torch.save(ckpt[{(found or ['state_dict'])[0]!r}], 'backbone.pth')`, then pass arch=..."
        )
    if arch is None:
        guess = _guess_arch(obj)
        hint = f" (the keys look like {guess})" if guess else ""
        raise ModelLoadError(
            f"{path}: a plain state dict does not say which network it belongs to; pass arch=NAME{hint}. "
            f"Known architectures: {', '.join(list_archs())}"
        )
    model, notes = _build_from_state(obj, arch, kwargs, str(path))
    default = (Preprocessing(source=ARCFACE_CONVENTION) if arch in _ARCFACE_ARCHS else _assumed("state_dict"))
    return TorchEmbedder(model, name=name or path.stem, format="state_dict", content_sha256=file_sha256(path),
                         prep=with_overrides(default, **overrides), device=device, embedding_size=embedding_size,
                         notes=notes)


def _from_callable(spec: str, device: str, overrides: dict[str, Any], embedding_size: int | None,
                   name: str | None, kwargs: dict[str, Any]) -> Embedder:
    module_name, _, func_name = spec.partition(":")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as exc:
        raise ModelLoadError(f"model spec {spec!r}: cannot import {func_name!r} from {module_name!r}: {exc}") from exc
    _check_options(kwargs, _keywords(func), f"model spec {spec!r}", f"arguments of {func_name}")
    try:
        module = func(**kwargs)
    except Exception as exc:  # the user's function: name it, whatever it raised
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise ModelLoadError(
            f"model spec {spec!r}: calling {func_name}({args}) raised {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(module, nn.Module):
        raise ModelLoadError(f"model spec {spec!r}: returned a {type(module).__name__}, expected a torch.nn.Module")
    return _from_module(module, name or spec, device, overrides, embedding_size)


def _from_module(module: nn.Module, name: str, device: str, overrides: dict[str, Any],
                 embedding_size: int | None) -> Embedder:
    return TorchEmbedder(module, name=name, format="callable", content_sha256=state_sha256(module.state_dict()),
                         prep=with_overrides(_assumed("callable"), **overrides), device=device,
                         embedding_size=embedding_size)


def load_model(
    spec: str | os.PathLike | nn.Module,
    *,
    arch: str | None = None,
    device: str = "cpu",
    channel_order: str | None = None,
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
    input_size: int | Sequence[int] | None = None,
    embedding_size: int | None = None,
    name: str | None = None,
    **kwargs: Any,
) -> Embedder:
    """Load ``spec`` (built-in name, file, ``"module:function"`` or ``nn.Module``) as an :class:`Embedder`.

    ``arch`` names the architecture of a plain state dict (see :func:`~fr_bench.models.list_archs`); extra keyword
    arguments go to the architecture's constructor (state dicts, checkpoints) or to the callable.
    ``channel_order``/``mean``/``std``/``input_size`` override the format's default input contract (table in the
    module docstring); ``embedding_size``, when given, is checked against the model's output.
    Raises :class:`ModelLoadError` with the file and the reason when the model cannot be loaded as asked, including
    a keyword the model kind does not take (the message lists the valid ones).
    """
    overrides = {"channel_order": channel_order, "mean": mean, "std": std, "input_size": input_size}
    device = str(device)
    if isinstance(spec, nn.Module):
        _check_options(kwargs, set(), f"model {name or type(spec).__name__}")
        return _from_module(spec, name or type(spec).__name__, device, overrides, embedding_size)
    text = os.fspath(spec)
    if text in BUILTIN_MODELS:
        path = reference_models_dir() / BUILTIN_MODELS[text]
        if not path.is_file():
            raise ModelLoadError(
                f"built-in model {text!r}: {path} is missing from this checkout (see reference_models/README.md)"
            )
        return _from_file(path, arch, device, overrides, embedding_size, name or text, kwargs)
    path = Path(text).expanduser()
    if path.is_file():
        return _from_file(path, arch, device, overrides, embedding_size, name, kwargs)
    if ":" in text and not path.exists():
        return _from_callable(text, device, overrides, embedding_size, name, kwargs)
    raise ModelLoadError(
        f"model {text!r}: no such file, and not a built-in name ({', '.join(BUILTIN_MODELS)}) or 'module:function'"
    )
