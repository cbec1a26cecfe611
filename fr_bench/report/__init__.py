"""Reports from stored results: leaderboard (and suite paper) / comparison / convention tables and ROC, DET,
distribution and EDC figures.

Formats numbers the metric engine computed; computes none itself and imports no models or extraction code.
"""

from fr_bench.report.leaderboard import suite_columns
from fr_bench.report.plots import plot_det, plot_distribution, plot_roc, save_figure
from fr_bench.report.quality_plots import edc_figure, plot_edc
from fr_bench.report.tables import (
    HEADLINE_COLUMNS,
    comparison_table,
    conventions_table,
    format_comparison,
    leaderboard,
    leaderboard_values,
    render,
    write_leaderboard,
)

__all__ = [
    "HEADLINE_COLUMNS",
    "comparison_table",
    "conventions_table",
    "edc_figure",
    "format_comparison",
    "leaderboard",
    "leaderboard_values",
    "plot_det",
    "plot_distribution",
    "plot_edc",
    "plot_roc",
    "render",
    "save_figure",
    "suite_columns",
    "write_leaderboard",
]
