"""fr_bench.metrics: plain functions over arrays (numpy or torch, CPU or CUDA). No file I/O, no models, and no
import of the rest of fr_bench: protocols, training and reports use only the names exported here.

Every function states its exact definition and, where the field disagrees, takes the convention as a keyword
(``TAR_CONVENTIONS``, ``PAIR_ACCURACY_CONVENTIONS`` list them with who uses each; one default per concept:
``convention="strict"`` for TAR@FAR, ``DEFAULT_ACCURACY`` = "kfold-grid" for pair accuracy). Arrays are positional,
every option is keyword-only. Every operating point (TAR@FAR, TPIR@FPIR, MegaFace) is an ``OperatingPoint``.

Modules: ``verification`` (ROC, TAR@FAR, EER, AUC, reports), ``accuracy`` (pair accuracy), ``angular`` (MagFace),
``identification`` (CMC, open-set TPIR@FPIR), ``megaface`` (distractor rank-1 and TAR@FAR in one pass),
``distributions``, ``quality`` (EDC: error versus discard), ``clustering`` (pairwise, BCubed, NMI),
``uncertainty`` (bootstrap intervals and replicates for caller-drawn weights), ``compare``
(paired tests). Private: ``_roc`` (the ROC/count kernel), ``_kfold``, ``_pairs``, ``_replicates``, ``_nearest``
(bootstrap kernels), ``_common``, ``_checks``.
"""

from fr_bench.metrics._common import allowed_count
from fr_bench.metrics._roc import DEFAULT_FARS, TAR_CONVENTIONS, OperatingPoint
from fr_bench.metrics.accuracy import (
    DEFAULT_ACCURACY,
    PAIR_ACCURACY_CONVENTIONS,
    KFoldResult,
    kfold_correct,
    pair_accuracy,
)
from fr_bench.metrics.angular import angular_heldout_scores, angular_kfold_accuracy, angular_scores
from fr_bench.metrics.clustering import clustering_scores, pair_counts
from fr_bench.metrics.compare import (
    McNemarResult,
    mcnemar,
    paired_accuracy_difference,
    paired_bootstrap_difference,
)
from fr_bench.metrics.distributions import DistributionOverlap, distribution_overlap
from fr_bench.metrics.identification import (
    OpenSetPoint,
    OpenSetSearch,
    cmc,
    ijb_1n_merged,
    ijb_1n_nist,
    mate_ranks,
    open_set_search,
    tpir_at_fpir,
)
from fr_bench.metrics.megaface import (
    DistractorResult,
    DistractorVerificationPoint,
    distractor_metrics,
    distractor_rank1,
    distractor_verification,
)
from fr_bench.metrics.quality import EDC_CONVENTIONS, EDCResult, edc, pair_quality
from fr_bench.metrics.uncertainty import (
    Interval,
    bootstrap_accuracy,
    bootstrap_eer,
    bootstrap_rate,
    bootstrap_tar_at_far,
    bootstrap_tpir_at_fpir,
    draw_unit_weights,
    per_unit_counts,
    percentile_interval,
    rate_replicates,
    tar_replicates,
    tpir_replicates,
)
from fr_bench.metrics.verification import (
    RocReport,
    VerificationReport,
    downsample_roc,
    eer,
    operating_points,
    roc,
    roc_report,
    tar_at_far,
    verification_report,
)

__all__ = [
    "EDCResult",
    "EDC_CONVENTIONS",
    "DEFAULT_ACCURACY",
    "DEFAULT_FARS",
    "DistractorResult",
    "DistractorVerificationPoint",
    "DistributionOverlap",
    "Interval",
    "KFoldResult",
    "McNemarResult",
    "OpenSetPoint",
    "OpenSetSearch",
    "OperatingPoint",
    "PAIR_ACCURACY_CONVENTIONS",
    "RocReport",
    "TAR_CONVENTIONS",
    "VerificationReport",
    "allowed_count",
    "angular_heldout_scores",
    "angular_kfold_accuracy",
    "angular_scores",
    "bootstrap_accuracy",
    "bootstrap_eer",
    "bootstrap_rate",
    "bootstrap_tar_at_far",
    "bootstrap_tpir_at_fpir",
    "clustering_scores",
    "cmc",
    "distractor_metrics",
    "distractor_rank1",
    "distractor_verification",
    "distribution_overlap",
    "downsample_roc",
    "draw_unit_weights",
    "edc",
    "eer",
    "ijb_1n_merged",
    "ijb_1n_nist",
    "kfold_correct",
    "mate_ranks",
    "mcnemar",
    "open_set_search",
    "operating_points",
    "pair_accuracy",
    "paired_accuracy_difference",
    "paired_bootstrap_difference",
    "per_unit_counts",
    "pair_counts",
    "pair_quality",
    "percentile_interval",
    "rate_replicates",
    "roc",
    "roc_report",
    "tar_at_far",
    "tpir_at_fpir",
    "tpir_replicates",
    "verification_report",
]
