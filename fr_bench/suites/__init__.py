"""Evaluation suites: several protocols in one run (issue 14).

* :mod:`fr_bench.suites.spec`: the suite declarations (``protocols/suites/*.toml``), ad-hoc suites from ``-p a,b,c``;
* :mod:`fr_bench.suites.discover`: which file or folder under a suite root holds each member;
* :mod:`fr_bench.suites.preflight`: everything wrong with a root, a model and an output folder, reported at once.
"""

# The functions discover() and preflight() are NOT re-exported: that would shadow their modules of the same name
# (``import fr_bench.suites.preflight as m`` would give the function). Import them from their modules.
from fr_bench.suites.discover import Discovery, Found, discover_all
from fr_bench.suites.preflight import Preflight, image_set_id
from fr_bench.suites.run import SuiteRun, run_suite
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

__all__ = ["Discovery", "Found", "Member", "Preflight", "Suite", "SuiteError", "default_candidates", "discover_all",
           "image_set_id", "list_suites", "load_suite", "parse_protocols_arg", "suite_from_protocols", "SuiteRun",
           "run_suite"]
