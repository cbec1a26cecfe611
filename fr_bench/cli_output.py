"""What ``frbench evaluate`` writes and prints: the ``--out`` check, the result file, and the protocol's table.

``--out`` is checked before any extraction (:func:`check_out_dir`); a result that cannot be written is still printed,
kept in the cache folder and named (:func:`unsaved_message`). Numbers are formatted here, never computed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import click

__all__ = ["check_out_dir", "fmt", "pct", "print_result", "unsaved_message", "write_record"]


def fmt(value: Any) -> str:
    """A number as printed: 6 significant digits, NaN as ``n/a``."""
    if isinstance(value, float):
        if value != value:
            return "n/a"
        return f"{value:.6g}"
    return str(value)


def check_out_dir(out: str | Path) -> Path:
    """``--out`` checked before any extraction: a folder (or one that can be made) that takes a file.

    Nothing is created: the probe file goes into ``--out`` when it exists, else into its nearest existing parent.
    """
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise click.ClickException(f"--out {out}: is a file; --out names a folder (the result goes to "
                                   "OUT/<model>/<protocol>.json)")
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        if not probe.is_dir():
            raise NotADirectoryError(20, "a parent is a file", str(probe))
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".frbench-write-check-"):
            pass
    except OSError as exc:
        raise click.ClickException(f"--out {out}: cannot write there ({exc.strerror or exc}); "
                                   "pick a folder you can write to") from exc
    return path


def write_record(out_dir: Path, record: Any) -> Path:
    """Write ``record`` to ``OUT/<model>/<protocol>.json`` (atomically) and return the path."""
    from fr_bench.results import write_result

    return write_result(out_dir, record)


def unsaved_message(exc: OSError, record: Any, cache_dir: str | None) -> str:
    """Keep a result whose write failed (cache folder, else the temp folder) and say where it and its scores are."""
    from fr_bench.cache import default_cache_dir
    from fr_bench.results import write_result

    kept = None
    for folder in (Path(cache_dir or default_cache_dir()) / "unsaved_results", Path(tempfile.gettempdir())):
        try:
            kept = write_result(folder, record)
            break
        except OSError:
            continue
    where = f"the result record was kept in {kept}" if kept else "the result record could not be kept anywhere"
    if record.scores_file:
        where += f", the per-pair scores are in {record.scores_file}"
    return f"could not write the result ({type(exc).__name__}: {exc}); the table is above; {where}"


def pct(value: Any) -> str:
    """A fraction in percent with 2 decimals (``n/a`` when missing)."""
    return "n/a" if value is None or value != value else f"{100 * float(value):.2f}"


def print_result(ev: Any) -> None:
    """The protocol's table: each number (rates in percent), its interval, and the operating point it was read at."""
    res, rec = ev.result, ev.record
    click.echo(f"{rec.protocol['display_name']}  |  model {rec.model['name']} ({rec.model['format']}, "
               f"{rec.model['embedding_size']}-d)  |  fr_bench {rec.fr_bench_version}")
    from fr_bench.metrics import names

    rows = []
    for key in sorted(res.metrics, key=names.sort_key):  # rates in percent; the result file keeps fractions
        value, rate = res.metrics[key], names.is_rate(key)
        iv = res.intervals.get(key)
        op = res.operating_points.get(key) or {}
        realised = op.get("far", op.get("fpir"))
        rows.append((
            key + (" (%)" if rate else ""),
            pct(value) if rate else fmt(value),
            f"[{pct(iv.get('low'))}, {pct(iv.get('high'))}] by {iv.get('unit', '?')}" if iv and rate else "",
            "" if realised is None else f"{float(realised):.2e}",
            "" if op.get("threshold") is None else f"{float(op['threshold']):.4f}",
        ))
    level = next((iv.get("level") for iv in res.intervals.values()), None)
    header = ("metric", "value", f"{level:.0%} CI" if level else "", "realised FAR", "threshold")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0])] + [row[i].rjust(widths[i]) for i in range(1, 5)]
        click.echo("  " + "  ".join(cells).rstrip())
    if res.conventions:
        click.echo("  conventions: " + "; ".join(f"{g} = {c}" for g, c in res.conventions.items()))
    ext = rec.extraction
    speed = "from the cache" if ext["from_cache"] else f"{fmt(ext['images_per_s'])} images/s"
    click.echo(f"  extraction: {ext['images']} images on {ext['device']}, {speed}"
               + (f", {ext['n_skipped']} skipped" if ext.get("n_skipped") else ""))
    for flag in res.flags:
        click.echo(f"  ! {flag}")
    if ev.path is not None:
        click.echo(f"  written: {ev.path}")
