"""Reports from stored results: leaderboard / comparison / convention tables and ROC, DET, distribution figures.

Formats numbers the metric engine computed; computes none itself and imports no models or extraction code.
"""

from fr_bench.report.plots import plot_det, plot_distribution, plot_roc, save_figure
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
    "format_comparison",
    "leaderboard",
    "leaderboard_values",
    "plot_det",
    "plot_distribution",
    "plot_roc",
    "render",
    "save_figure",
    "write_leaderboard",
]
