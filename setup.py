"""Build hook: ship the top-level ``protocols/`` and ``reference_models/`` folders inside the installed package.

The design card keeps the declarative specs and reference models at the top of the repository, beside the package.
A wheel (``pip install .``, ``pip wheel .``) must still carry them, so the build maps each folder to a data-only
sub-package (``pyproject.toml``'s ``[tool.setuptools.package-dir]`` says which folder, ``package-data`` which files;
every sub-folder is included). This file only lists those packages, which ``packages.find`` cannot discover: they
live outside ``fr_bench/``. :mod:`fr_bench._paths` finds the folders beside the package (checkout, editable
install) or inside it (wheel). Nothing is copied by hand into the repository.
"""

from setuptools import find_namespace_packages, setup

#: Data-only packages of the wheel, mapped in pyproject.toml to the top-level folders of the checkout.
DATA_PACKAGES = ["fr_bench._data.protocols", "fr_bench._data.reference_models"]

#: fr_bench and its sub-packages (with or without ``__init__.py``); the demo images are package data of fr_bench.
CODE_PACKAGES = find_namespace_packages(include=["fr_bench", "fr_bench.*"],
                                        exclude=["*.__pycache__", "fr_bench.protocols.demo_data*"])

setup(packages=CODE_PACKAGES + DATA_PACKAGES)
