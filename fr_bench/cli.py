"""The ``frbench`` command line: evaluate (one protocol or a suite), landmarks, protocols, conventions; compare,
leaderboard and plot live in :mod:`fr_bench.cli_report`, train and study in :mod:`fr_bench.cli_train`, cluster in
:mod:`fr_bench.cli_cluster`.

Every command's ``--help`` says what it does, with an example; numbers come from :mod:`fr_bench.metrics` through the
protocols, never from here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

import fr_bench
from fr_bench.cli_output import check_out_dir, print_result, unsaved_message, write_record
from fr_bench.cli_report import DEFAULT_RESULTS  # where results go and are read by default


def _parse_pairs(values: tuple[str, ...], what: str) -> dict[str, Any]:
    """``("a=1", "b=x")`` -> ``{"a": 1, "b": "x"}`` (ints, floats and true/false are converted)."""
    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE", param_hint=what)
        out[key.strip()] = _coerce(raw.strip())
    return out


def _coerce(raw: str) -> Any:
    low = raw.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw


#: Optional dependencies -> the extra that installs them (a missing one is bad setup, not a bug).
_EXTRAS = {"onnxruntime": "onnx", "onnx": "onnx", "cv2": "detect"}

#: What a command may raise for bad input or a bad environment: fr_bench's own errors (ProtocolError,
#: ModelLoadError, ModelOutputError, ScoresFileError, ResultFormatError, ComparisonError, ImageDecodeError, the
#: training errors ...) all derive from ValueError or RuntimeError; files and folders raise OSError.
_USER_ERRORS = (ValueError, KeyError, OSError, RuntimeError)


def one_line(exc: BaseException) -> str:
    """``exc`` as the one line the CLI prints: its type and message, line breaks folded."""
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    text = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Group(click.Group):
    """Shows bad input (a missing file, a malformed line, an unknown name, a model that misbehaves) as ONE clear
    error line and a non-zero exit status, not a traceback; an optional dependency that is missing names its extra.
    Anything else is a bug in fr_bench and keeps its traceback. Set ``FRBENCH_DEBUG=1`` for every traceback.
    """

    def invoke(self, ctx: click.Context) -> Any:
        import os

        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except ModuleNotFoundError as exc:
            extra = _EXTRAS.get((exc.name or "").split(".")[0])
            if extra is None or os.environ.get("FRBENCH_DEBUG"):
                raise
            raise click.ClickException(f"{one_line(exc)}; install it with pip install 'fr-bench[{extra}]'") from exc
        except _USER_ERRORS as exc:
            if os.environ.get("FRBENCH_DEBUG"):
                raise
            raise click.ClickException(one_line(exc)) from exc


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(fr_bench.__version__, prog_name="frbench")
def main() -> None:
    """fr_bench: exact, fast and honest face-recognition benchmarking.

    \b
    Quick start (offline, built-in data and model):
      frbench evaluate --model sface --protocol demo
    Your own model on IJB-C:
      frbench evaluate --model backbone.pth --arch iresnet100 --protocol ijbc --root /data/IJB_release/IJBC
    The paper's first table in one run (lfw.bin, cfp_fp.bin, ... under one folder):
      frbench evaluate -m backbone.pth --arch iresnet100 -p suite:quick -r /data/faces_emore
    Quality (EDC of the feature norm) and clustering:
      frbench evaluate -m sface -p demo -c flip=none --quality norm
      frbench cluster -m sface -p demo
    Then:
      frbench leaderboard results/ --format md
      frbench plot roc --protocol ijbc results/
      frbench compare results/modelA/ijbc.json results/modelB/ijbc.json
    \b
    Every command's --help has examples (frbench evaluate --help). Results go to ./results/ (--out), the
    embedding cache to $FRBENCH_CACHE (default ~/.cache/fr_bench). Bad input stops with one error line;
    FRBENCH_DEBUG=1 shows the traceback.
    """


# --------------------------------------------------------------------------------------------------- evaluate
_MODEL_HELP = (
    "Model to evaluate: 'sface' (built-in), an .onnx file, a TorchScript file, an fr_bench checkpoint, a state dict "
    "(with --arch), or 'module:function' returning an nn.Module."
)


def _model_options(f):
    options = [
        click.option("--model", "-m", "model", required=True, help=_MODEL_HELP),
        click.option("--protocol", "-p", required=True,
                     help="Protocol name (see `frbench protocols`); evaluate also takes a list 'lfw,cfp_fp' or "
                          "'suite:NAME'."),
        click.option("--root", "-r", type=click.Path(exists=True), default=None,
                     help="Folder (or .bin pack) holding the benchmark files; not needed for 'demo'."),
        click.option("--arch", default=None, help="Backbone of a plain state dict, e.g. iresnet100, mobilefacenet."),
        click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)."),
        click.option("--batch-size", default=None, type=int, help="Images per batch (default: 32 on CPU, 128 on CUDA)."),
        click.option("--workers", "num_workers", default=None, type=int,
                     help="Image decoding worker processes (default: min(cores, 8)); 0 decodes in the main process."),
        click.option("--no-flip", is_flag=True,
                     help="Embed without the mirror image (flip=none; -c flip=sum|concat|none names it)."),
        click.option("--no-amp", is_flag=True, help="Run in float32 on CUDA instead of bf16 autocast."),
        click.option("--cache-dir", type=click.Path(), default=None,
                     help="Embedding cache folder (default $FRBENCH_CACHE or ~/.cache/fr_bench)."),
        click.option("--no-cache", is_flag=True, help="Neither read nor write the embedding cache."),
        click.option("--skip-bad-images", is_flag=True,
                     help="Skip undecodable images instead of stopping; the result records what was skipped."),
        click.option("--option", "-o", "protocol_option", multiple=True, metavar="KEY=VALUE",
                     help="Protocol option, repeatable (e.g. -o distractors=10000, -o allow_missing=true)."),
        click.option("--model-option", multiple=True, metavar="KEY=VALUE",
                     help="Model input-contract override, e.g. channel_order=BGR, mean=127.5, std=128."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bar."),
    ]
    for opt in reversed(options):
        f = opt(f)
    return f


class _QualityOption(click.Option):
    """``--quality``: its help is fr_bench.protocols.quality.QUALITY_HELP, read only when help is shown (importing
    the protocols at start-up would slow every command)."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        if not self.help:
            from fr_bench.protocols.quality import QUALITY_HELP

            self.help = QUALITY_HELP[:1].upper() + QUALITY_HELP[1:] + "."
        return super().get_help_record(ctx)


def _prepare_kwargs(kw: dict[str, Any]) -> dict[str, Any]:
    return {
        "arch": kw["arch"],
        "device": kw["device"],
        "batch_size": kw["batch_size"],
        "num_workers": kw["num_workers"],
        "flip": False if kw["no_flip"] else None,
        "amp": not kw["no_amp"],
        "cache_dir": kw["cache_dir"],
        "use_cache": not kw["no_cache"],
        "skip_bad_images": kw["skip_bad_images"],
        "progress": not kw["quiet"],
        "protocol_options": _parse_pairs(kw["protocol_option"], "--option"),
        "model_options": _parse_pairs(kw["model_option"], "--model-option"),
    }


@main.command(short_help="Evaluate a model on a protocol and store the result.")
@_model_options
@click.option("--out", type=click.Path(), default=DEFAULT_RESULTS, show_default=True,
              help="Results folder; the result is written to OUT/<model-name>/<protocol>.json.")
@click.option("--name", default=None, help="Model name in results and leaderboards (default: from the file).")
@click.option("--convention", "-c", multiple=True, metavar="GROUP=NAME",
              help="Pick a named convention, e.g. -c accuracy=kfold-exact -c tar=strict (see `frbench conventions`).")
@click.option("--ci", "ci", type=float, default=None, is_flag=False, flag_value=0.95,
              help="Add bootstrap confidence intervals at this level (--ci alone: 0.95).")
@click.option("--n-boot", default=1000, show_default=True, type=int, help="Bootstrap replicates for --ci.")
@click.option("--seed", default=0, show_default=True, type=int, help="Bootstrap seed.")
@click.option("--json", "as_json", is_flag=True, help="Print the result record as JSON on stdout.")
@click.option("--allow-missing", is_flag=True,
              help="Suites: run the members found under ROOT and list the others as skipped (default: stop).")
@click.option("--quality", default=None, metavar="SOURCE", cls=_QualityOption)
@click.option("--quality-pair", "quality_how", type=click.Choice(["min", "mean", "product"]), default="min",
              show_default=True, help="How --quality makes a pair's quality from its two images'.")
def evaluate(out, name, convention, ci, n_boot, seed, as_json, allow_missing, quality, quality_how,
             model, protocol, root, **kw) -> None:
    """Evaluate MODEL on PROTOCOL (one protocol, a list, or a suite) and store the result.

    \b
    Prints the protocol's official table (each number with its convention, realised operating point and, with
    --ci, its interval) and writes OUT/<model-name>/<protocol>.json atomically. OUT is checked before any
    extraction; if the write still fails, the table is printed, the record is kept in the cache folder
    (CACHE/unsaved_results/) and the error says where.
    \b
    Examples:
      frbench evaluate --model sface --protocol demo
      frbench evaluate -m ckpt.pth --arch iresnet50 -p lfw -r /data/faces_emore/lfw.bin --ci
      frbench evaluate -m model.onnx -p ijbc -r /data/IJB_release/IJBC -c tar=strict
    \b
    Several protocols in one run (ROOT holds lfw.bin, cfp_fp.bin, ... or IJBB/, IJBC/; see protocols/suites/):
      frbench evaluate -m ckpt.pth --arch iresnet50 -p lfw,cfp_fp,agedb_30 -r /data/faces_emore
      frbench evaluate -m ckpt.pth --arch iresnet50 -p suite:quick -r /data/faces_emore --allow-missing
      frbench evaluate -m sface -p suite:demo
    A suite is checked first (every member found and complete, the model's input contract, OUT writable) and
    stops before any extraction listing everything wrong; each distinct image set is embedded once; one result
    file per protocol plus OUT/<model-name>/suite-<suite>.json tie the run together; one combined table.
    """
    from fr_bench.runner import evaluate_model, is_main_process
    from fr_bench.suites.spec import parse_protocols_arg

    conventions = _parse_pairs(convention, "--convention") or None
    suite = parse_protocols_arg(protocol)
    if suite is None and allow_missing:
        raise click.UsageError("--allow-missing applies to suites (-p a,b,c or -p suite:NAME), not to one protocol")
    if suite is not None:  # a suite's preflight checks OUT with everything else, in one report
        from fr_bench.cli_suite import evaluate_suite

        evaluate_suite(model, suite, root, Path(out).expanduser(), name=name, conventions=conventions, ci=ci, n_boot=n_boot,
                       seed=seed, as_json=as_json, allow_missing=allow_missing, quality=quality,
                       quality_how=quality_how, prepare_kwargs=_prepare_kwargs(kw))
        return
    out_dir = check_out_dir(out)
    ev = evaluate_model(
        model, protocol, root, out=None, name=name, conventions=conventions,
        ci=ci, n_boot=n_boot, seed=seed, quality=quality, quality_how=quality_how, **_prepare_kwargs(kw),
    )
    if not is_main_process():
        return
    failure = None
    try:
        ev.path = write_record(out_dir, ev.record)
    except OSError as exc:
        failure = exc
    if as_json:
        click.echo(json.dumps(ev.record.to_dict(), indent=2))
    else:
        print_result(ev)
    if failure is not None:
        raise click.ClickException(unsaved_message(failure, ev.record, kw["cache_dir"]))


# ------------------------------------------------------------------------------------------------- landmarks
@main.command(short_help="Detect 5 face landmarks (YuNet) for unaligned photos.")
@click.argument("root", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "-o", type=click.Path(dir_okay=False), default=None,
              help="Landmark file to write (default: ./<ROOT name>_5pts_score.txt); images without a face are listed "
                   "in OUT.missing.txt.")
@click.option("--pattern", default="**/*.jpg", show_default=True,
              help="Which files under ROOT to detect (glob relative to ROOT), e.g. '**/*.png'.")
@click.option("--score-threshold", default=0.6, show_default=True, type=float,
              help="Minimum YuNet score for a face.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def landmarks(root, out, pattern, score_threshold, quiet) -> None:
    """Detect 5 landmarks (YuNet) in every photo under ROOT and write the landmark file the protocols align with.

    For official, unaligned releases (LFW's 250x250 photos, CFP, CALFW/CPLFW images, a `folder` tree of raw
    photos) when you have no landmark file of your own. Lines are '<path relative to ROOT> x1 y1 ... x5 y5 score'
    (right eye, left eye, nose tip, right mouth corner, left mouth corner); of several faces, the one nearest the
    image centre is kept. Images with no face are listed in OUT.missing.txt, never silently dropped: the
    protocols stop on them, or with -o allow_missing=true (pair-list protocols: lfw, cfp, calfw, cplfw) drop
    their pairs and flag the result.

    \b
    Examples (detect, then evaluate with the file):
      frbench landmarks /data/lfw -o lfw_5pts.txt
      frbench evaluate -m sface -p lfw -r /data/lfw -o landmarks=lfw_5pts.txt
    \b
    A folder tree of raw photos:
      frbench landmarks /data/myfaces -o myfaces_5pts.txt --pattern '**/*.png'
      frbench evaluate -m sface -p folder -r /data/myfaces -o landmarks=myfaces_5pts.txt
    \b
    Needs OpenCV: pip install 'fr-bench[detect]'
    """
    from fr_bench.detect import write_landmark_file

    out_path = Path(out) if out else Path(f"{Path(root).resolve().name}_5pts_score.txt")
    try:
        summary = write_landmark_file(root, out_path, pattern=pattern, progress=not quiet,
                                      score_threshold=score_threshold)
    except ImportError as exc:  # OpenCV is an optional extra
        raise click.ClickException(str(exc)) from exc
    click.echo(summary.describe())


# ------------------------------------------------------------------------------------------------- protocols
@main.command(short_help="List the protocols; with --root, which are present there.")
@click.option("--root", "-r", type=click.Path(exists=True), default=None,
              help="With a folder: for each protocol, whether its files are found there and complete.")
def protocols(root) -> None:
    """List the protocols fr_bench knows (and, with --root, which are present under ROOT).

    \b
    Examples:
      frbench protocols
      frbench protocols --root /data/benchmarks
    """
    from fr_bench.protocols import list_protocols, load_protocol, load_spec

    for name in list_protocols():
        spec = load_spec(name)
        line = f"{name:<10} {spec.get('display_name', name)}"
        if root is not None and name not in ("demo", "folder"):
            found, reasons = None, []
            for cand in _candidate_roots(Path(root), name):
                try:
                    proto = load_protocol(name, cand)
                except Exception as exc:  # a survey reports, it does not stop
                    reasons.append(str(exc).splitlines()[0][:140])
                    continue
                found = f"  -- found in {cand}: {len(proto.images)} images"
                break
            line += found or f"  -- not found: {reasons[0] if reasons else 'no candidate folder'}"
        click.echo(line)


def _candidate_roots(root: Path, protocol: str) -> list[Path]:
    """ROOT itself, then its sub-folders (and .bin packs) whose names start like the protocol (IJBC/, lfw.bin)."""
    stem = protocol.split("_")[0].lower()
    out = [root]
    if root.is_dir():
        for child in sorted(root.iterdir()):
            norm = "".join(ch for ch in child.name.lower() if ch.isalnum())
            if norm.startswith(stem.replace("_", "")):
                out.append(child)
    return out


# ------------------------------------------------------------------------------------------------ conventions
@main.command(short_help="One model's numbers under every named convention.")
@_model_options
def conventions(model, protocol, root, **kw) -> None:
    """The same embeddings under every applicable named convention, side by side.

    Uses the embedding cache: no second extraction. Shows how much the convention alone moves each number.

    \b
    Examples:
      frbench conventions --model sface --protocol demo
      frbench conventions -m ckpt.pth --arch iresnet50 -p lfw -r /data/faces_emore/lfw.bin
    """
    from fr_bench.report.tables import conventions_table, render
    from fr_bench.runner import conventions_rows, prepare

    prep = prepare(model, protocol, root, **_prepare_kwargs(kw))
    rows = conventions_rows(prep.protocol, prep.embeddings.features, prep.embeddings.norms, prepared=prep)
    click.echo(render(conventions_table(rows), "md"))


def _entry() -> None:  # pragma: no cover
    sys.exit(main())


from fr_bench.cli_train import register_commands as _register_training  # noqa: E402  (frbench train, study)
_register_training(main)
from fr_bench.cli_cluster import register_commands as _register_clustering  # noqa: E402  (frbench cluster)
_register_clustering(main)
from fr_bench.cli_report import register_commands as _register_reports  # noqa: E402  (compare, leaderboard, plot)
_register_reports(main)
