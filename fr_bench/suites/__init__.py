"""Evaluation suites: several protocols in one run (issue 14).

* :mod:`fr_bench.suites.spec`: the suite declarations (``protocols/suites/*.toml``), ad-hoc suites from ``-p a,b,c``;
* :mod:`fr_bench.suites.discover`: which file or folder under a suite root holds each member;
* :mod:`fr_bench.suites.preflight`: everything wrong with a root, a model and an output folder, reported at once.
"""

from fr_bench.suites.spec import (
    Member,
    Suite,
    SuiteError,
    default_candidates,
    list_suites,
    load_suite,
    parse_protocols_arg,
    suite_from_protocols,
)

__all__ = ["Member", "Suite", "SuiteError", "default_candidates", "list_suites", "load_suite",
           "parse_protocols_arg", "suite_from_protocols"]
