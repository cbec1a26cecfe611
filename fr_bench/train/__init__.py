"""Training: loss heads (registry), data readers, recipes, trainer, study. See fr_bench/train/README.md.

Kept import-light: only the head registry is imported here (it needs torch, nothing else of ours beyond it).
Training imports ``fr_bench.models`` and ``fr_bench.metrics``, never ``fr_bench.protocols`` or the runner.
"""

from fr_bench.train.heads import HeadConfigError, build_head, head_defaults, list_heads, register_head
from fr_bench.train.data import SyntheticFaces, open_dataset, write_test_protocol  # noqa: F401 (T2 data)

__all__ = ["HeadConfigError", "build_head", "head_defaults", "list_heads", "register_head"]
