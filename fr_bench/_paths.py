"""Where fr_bench finds the data folders that live beside the package (``protocols/``, ``reference_models/``).

The design card keeps declarative specs and reference models at the top level of the repository, not inside the
package. An editable install (``pip install -e .``, the documented one) finds them beside ``fr_bench/``; any other
install points ``FRBENCH_HOME`` at a checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def project_root() -> Path:
    """The checkout that holds ``protocols/`` and ``reference_models/`` (``$FRBENCH_HOME`` wins if set)."""
    env = os.environ.get("FRBENCH_HOME")
    candidates = [Path(env)] if env else []
    candidates.append(PACKAGE_DIR.parent)
    for cand in candidates:
        if (cand / "protocols").is_dir():
            return cand
    raise FileNotFoundError(
        "fr_bench could not find its 'protocols/' folder beside the package. Install from a checkout with "
        "`pip install -e .`, or set FRBENCH_HOME to the repository root."
    )


def specs_dir() -> Path:
    """Folder of the declarative protocol specs (one TOML per protocol)."""
    return project_root() / "protocols"


def reference_models_dir() -> Path:
    """Folder of the reference models and training recipes."""
    return project_root() / "reference_models"
