"""``frbench compare``, ``leaderboard`` and ``plot``: the commands that read stored results (no model, no images).

Registered on the ``frbench`` group by :mod:`fr_bench.cli`; numbers come from the result files (and, for
``compare``, their score files) through :mod:`fr_bench.comparison` and :mod:`fr_bench.report`.
"""

from __future__ import annotations

from pathlib import Path

import click

#: Where ``frbench evaluate`` writes results by default (``--out``), and where these commands read them.
DEFAULT_RESULTS = "results"


# ---------------------------------------------------------------------------------------------------- compare
@click.command(short_help="Paired difference of two models, with intervals and tests.")
@click.argument("result_a", type=click.Path(exists=True))
@click.argument("result_b", type=click.Path(exists=True))
@click.option("--n-boot", default=1000, show_default=True, type=int, help="Paired bootstrap replicates.")
@click.option("--seed", default=0, show_default=True, type=int, help="Bootstrap seed.")
@click.option("--level", default=0.95, show_default=True, type=float,
              help="Confidence level of the difference's interval.")
def compare(result_a, result_b, n_boot, seed, level) -> None:
    """Paired comparison of two result files of one protocol (same pairs, same data).

    For each headline number: the difference B - A with its paired-bootstrap interval; for pair accuracy also
    McNemar's exact test on the pairs the two models classify differently.

    \b
    Examples:
      frbench compare results/modelA/lfw.json results/modelB/lfw.json
      frbench compare results/modelA/ijbc.json results/modelB/ijbc.json --n-boot 2000 --level 0.99
    """
    from fr_bench.comparison import compare_results
    from fr_bench.report.tables import format_comparison

    rows, name_a, name_b = compare_results(result_a, result_b, n_boot=n_boot, seed=seed, level=level)
    click.echo(format_comparison(rows, model_a=name_a, model_b=name_b))


# ------------------------------------------------------------------------------------------------ leaderboard
@click.command(short_help="Cross-model table of stored results (md/csv/latex/html).")
@click.argument("results_dir", type=click.Path(), default=DEFAULT_RESULTS)
@click.option("--format", "fmt", type=click.Choice(["md", "csv", "latex", "html"]), default="md", show_default=True,
              help="Table format; footnotes follow the table (CSV: lines starting with #).")
@click.option("--write", is_flag=True, help="Also write RESULTS_DIR/leaderboard.<ext>.")
@click.option("--edc", type=click.Choice(["fnm", "fm"]), default=None, is_flag=False, flag_value="fnm",
              help="Add each protocol's stored EDC pAUC column (--edc alone: FNM-EDC); lower is better.")
@click.option("--suite", default=None, metavar="NAME",
              help="Render a suite as the paper table (quick, full, demo or a suite .toml), columns in member order.")
def leaderboard(results_dir, fmt, write, edc, suite) -> None:
    """Cross-model table of every stored result, with the published column conventions.

    Rows of one protocol computed on different data (different file hashes) or under different conventions (or,
    for --edc, different quality sources or EDC settings) are marked and never ranked together.

    \b
    Examples:
      frbench leaderboard
      frbench leaderboard results/ --format latex
      frbench leaderboard results/ --format csv --write
      frbench leaderboard results/ --suite quick --format latex
      frbench leaderboard results/ --edc fnm
    """
    from fr_bench.report.tables import leaderboard as build, render, write_leaderboard
    from fr_bench.results import load_results

    records = load_results(results_dir)
    if not records:
        raise click.ClickException(f"no result files under {results_dir}; run `frbench evaluate` first")
    click.echo(render(build(records, edc=edc, suite=suite), fmt))
    if write:
        click.echo(f"written: {write_leaderboard(results_dir, fmt, edc=edc, suite=suite)}", err=True)


# ------------------------------------------------------------------------------------------------------- plot
@click.command(short_help="ROC, DET or EDC curves of several models, or score distributions.")
@click.argument("kind", type=click.Choice(["roc", "det", "dist", "edc"]))
@click.argument("sources", nargs=-1, type=click.Path(exists=True))
@click.option("--protocol", "-p", required=True, help="Protocol whose results to plot.")
@click.option("--out", "-o", type=click.Path(), default=None,
              help="Output file (.png or .pdf); default results/plots/<protocol>_<kind>.png (edc: _edc_<error>).")
@click.option("--error", type=click.Choice(["fnm", "fm"]), default="fnm", show_default=True,
              help="edc: which error the EDC shows (FNMR against the share of mated pairs discarded, or FMR "
                   "against the share of non-mated pairs).")
def plot(kind, sources, protocol, out, error) -> None:
    """Plot ROC, DET or EDC curves of several models on one protocol, or a model's score distributions.

    SOURCES are result files or results folders (default: results/). EDC: one step curve per stored result (each
    model and quality source), its theoretical best dashed, the discard limit marked.

    \b
    Examples:
      frbench plot roc -p ijbc results/
      frbench plot dist -p demo results/sface/demo.json -o demo_dist.pdf
      frbench plot edc -p demo results/ --error fnm
    """
    from fr_bench.report import plots
    from fr_bench.results import load_results, read_result

    records = []
    for src in sources or (DEFAULT_RESULTS,):
        p = Path(src)
        records.extend(load_results(p) if p.is_dir() else [read_result(p)])
    records = [r for r in records if r.protocol["name"] == protocol]
    if not records:
        raise click.ClickException(f"no results for protocol {protocol!r} in {', '.join(sources) or DEFAULT_RESULTS}")
    stem = f"{protocol}_edc_{error}" if kind == "edc" else f"{protocol}_{kind}"
    out_path = Path(out) if out else Path(DEFAULT_RESULTS) / "plots" / f"{stem}.png"
    if kind == "edc":
        from fr_bench.report.quality_plots import plot_edc

        written = plot_edc(records, protocol, out_path, error=error)
    elif kind == "roc":
        written = plots.plot_roc(records, protocol, out_path)
    elif kind == "det":
        written = plots.plot_det(records, protocol, out_path)
    else:
        if len(records) > 1:
            click.echo(f"{len(records)} results for {protocol}: plotting the first ({records[0].model['name']})", err=True)
        rec = records[0]
        written = plots.plot_distribution(rec.result.details["distribution"], out_path,
                                          title=f"{rec.model['name']} on {rec.protocol['display_name']}")
    click.echo("written: " + ", ".join(str(p) for p in written))


def register_commands(group: click.Group) -> None:
    """Add ``compare``, ``leaderboard`` and ``plot`` to the ``frbench`` group (called by :mod:`fr_bench.cli`)."""
    for command in (compare, leaderboard, plot):
        group.add_command(command)
