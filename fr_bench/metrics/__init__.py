"""fr_bench.metrics: plain functions over arrays (numpy or torch, CPU or CUDA). No file I/O, no models.

Every function states its exact definition and, where the field disagrees, takes the convention as an argument
(``TAR_CONVENTIONS``, ``PAIR_ACCURACY_CONVENTIONS`` list them with who uses each).
"""

from fr_bench.metrics.distributions import DistributionOverlap, distribution_overlap
from fr_bench.metrics.compare import (
    McNemarResult,
    mcnemar,
    paired_accuracy_difference,
    paired_bootstrap_difference,
)
from fr_bench.metrics.identification import (
    DistractorResult,
    DistractorVerificationPoint,
    OpenSetPoint,
    OpenSetSearch,
    cmc,
    distractor_rank1,
    distractor_verification,
    ijb_1n_merged,
    ijb_1n_nist,
    mate_ranks,
    open_set_search,
    tpir_at_fpir,
)
from fr_bench.metrics.uncertainty import (
    Interval,
    bootstrap_accuracy,
    bootstrap_eer,
    bootstrap_rate,
    bootstrap_tar_at_far,
    bootstrap_tpir_at_fpir,
)
from fr_bench.metrics.verification import (
    DEFAULT_FARS,
    PAIR_ACCURACY_CONVENTIONS,
    TAR_CONVENTIONS,
    KFoldResult,
    OperatingPoint,
    VerificationReport,
    angular_kfold_accuracy,
    angular_scores,
    eer,
    kfold_accuracy,
    operating_points,
    pair_accuracy,
    roc,
    tar_at_far,
    verification_report,
)

__all__ = [
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
    "TAR_CONVENTIONS",
    "VerificationReport",
    "angular_kfold_accuracy",
    "angular_scores",
    "bootstrap_accuracy",
    "bootstrap_eer",
    "bootstrap_rate",
    "bootstrap_tar_at_far",
    "bootstrap_tpir_at_fpir",
    "cmc",
    "distractor_rank1",
    "distractor_verification",
    "distribution_overlap",
    "eer",
    "ijb_1n_merged",
    "ijb_1n_nist",
    "kfold_accuracy",
    "mate_ranks",
    "mcnemar",
    "open_set_search",
    "operating_points",
    "pair_accuracy",
    "paired_accuracy_difference",
    "paired_bootstrap_difference",
    "roc",
    "tar_at_far",
    "tpir_at_fpir",
    "verification_report",
]
