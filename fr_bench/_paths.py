"""Where fr_bench finds its data folders: ``protocols/`` (declarative specs) and ``reference_models/``.

The design card keeps them at the top level of the repository, beside the package. A wheel (``pip install .``,
``pip install fr_bench-*.whl``) carries them inside the package, as ``fr_bench/_data/protocols/`` and
``fr_bench/_data/reference_models/`` (the build maps the top-level folders there: ``pyproject.toml`` and
``setup.py``). So each folder is looked up:

1. in ``$FRBENCH_HOME`` when that is set (a checkout whose folders should win, e.g. specs being edited);
2. inside the package (an installed wheel);
3. beside the package (a checkout, or an editable install ``pip install -e .``).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent

#: The folders a wheel carries inside the package.
SHIPPED_DIR = PACKAGE_DIR / "_data"


def data_dir(name: str) -> Path:
    """The folder ``name`` (``"protocols"`` or ``"reference_models"``), looked up as the module doc says.

    Raises ``FileNotFoundError`` naming every place looked at when none holds it.
    """
    env = os.environ.get("FRBENCH_HOME")
    if env:
        cand = Path(env).expanduser() / name
        if cand.is_dir():
            return cand
        raise FileNotFoundError(f"FRBENCH_HOME={env} has no {name!r} folder; point it at the fr_bench repository "
                                "root, or unset it to use the installed copy")
    candidates = [SHIPPED_DIR / name, PACKAGE_DIR.parent / name]
    for cand in candidates:
        if cand.is_dir():
            return cand
    raise FileNotFoundError(
        f"fr_bench could not find its {name!r} folder (looked in {', '.join(str(c) for c in candidates)}). "
        "The installation is incomplete: reinstall with `pip install .` (or `pip install -e .` from a checkout), "
        "or set FRBENCH_HOME to the repository root."
    )


def specs_dir() -> Path:
    """Folder of the declarative protocol specs (one TOML per protocol)."""
    return data_dir("protocols")


def reference_models_dir() -> Path:
    """Folder of the reference models and training recipes."""
    return data_dir("reference_models")
