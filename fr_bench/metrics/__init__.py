"""fr_bench.metrics: plain functions over arrays (numpy or torch, CPU or CUDA). No file I/O, no models.

Every function states its exact definition and, where the field disagrees, takes the convention as an argument
(``TAR_CONVENTIONS``, ``PAIR_ACCURACY_CONVENTIONS`` list them with who uses each).
"""

from fr_bench.metrics.distributions import DistributionOverlap, distribution_overlap
from fr_bench.metrics.identification import cmc, distractor_rank1, tpir_at_fpir
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
    "PAIR_ACCURACY_CONVENTIONS",
    "TAR_CONVENTIONS",
    "DistributionOverlap",
    "KFoldResult",
    "OperatingPoint",
    "VerificationReport",
    "angular_kfold_accuracy",
    "angular_scores",
    "cmc",
    "distractor_rank1",
    "distribution_overlap",
    "eer",
    "kfold_accuracy",
    "operating_points",
    "pair_accuracy",
    "roc",
    "tar_at_far",
    "tpir_at_fpir",
    "verification_report",
]
