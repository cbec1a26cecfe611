"""Genuine/impostor distribution analysis (STUB: being implemented)."""
from __future__ import annotations


def distribution_overlap(genuine, impostor, bins=200, range=None):
    raise NotImplementedError
