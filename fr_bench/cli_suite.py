"""``frbench evaluate -p a,b,c`` and ``-p suite:NAME``: the preflight report, the suite run, the combined table.

The one-protocol path of ``frbench evaluate`` stays in :mod:`fr_bench.cli`; this module only prints (numbers come
from the members' protocols through :func:`fr_bench.suites.run.run_suite`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

__all__ = ["evaluate_suite"]


def evaluate_suite(model: str, suite: Any, root: str | None, out_dir: Path, *, name: str | None,
                   conventions: dict[str, Any] | None, ci: float | None, n_boot: int, seed: int, as_json: bool,
                   allow_missing: bool, quality: str | None, quality_how: str,
                   prepare_kwargs: dict[str, Any]) -> None:
    """Run ``suite`` and print the preflight report (to stderr with ``--json``), then the combined table (or, with
    ``--json``, the suite record). Preflight problems stop the run before any extraction with one error."""
    from fr_bench.report.suite_table import suite_table
    from fr_bench.runner import is_main_process
    from fr_bench.suites.run import run_suite
    from fr_bench.suites.spec import SuiteError

    shown: list[Any] = []

    def show(pre: Any) -> None:
        shown.append(pre)
        if is_main_process():
            click.echo(pre.report(), err=as_json)

    try:
        run = run_suite(model, suite, root, out=out_dir, name=name, conventions=conventions, ci=ci, n_boot=n_boot,
                        seed=seed, allow_missing=allow_missing,
                        quality=quality, quality_how=quality_how,
                        on_preflight=show, **prepare_kwargs)
    except SuiteError as exc:
        if not shown or shown[0].passed:  # not the preflight's problems (e.g. every member skipped): one line
            raise
        hint = "" if allow_missing else "; --allow-missing runs the members that are found"
        raise click.ClickException(f"suite {suite.name}: the preflight found problems (listed above); "
                                   f"nothing was embedded{hint}") from exc
    if not is_main_process():
        return
    if as_json:
        click.echo(json.dumps(run.record, indent=2))
        return
    records = {p: ev.record for p, ev in run.evaluations.items()}
    click.echo(suite_table(records, run.skipped, order=suite.protocols,
                           title=f"suite {suite.display_name}  |  model {run.record['model']['name']}"))
    for i, ext in enumerate(run.extractions):
        how = "from the cache" if ext["from_cache"] else f"{ext['seconds']:.1f} s"
        click.echo(f"  extraction {i + 1}: {ext['images']} images for {', '.join(ext['protocols'])} ({how})")
    if run.record_path is not None:
        click.echo(f"  suite record: {run.record_path}")
