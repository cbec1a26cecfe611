"""Shared setup of the training tests (trainer, CLI, study): one intra-op thread and the tiny recipe overrides."""

from __future__ import annotations

import pytest
import torch

#: Recipe overrides for a network and batch that train in a fraction of a second on CPU: tinyface of width 4 on
#: 32x32 input, 16-d embedding, batch 8, a log row every step, data read in the main process.
TINY = ["model.backbone=tinyface", "model.input_size=32", "model.embedding_size=16", "model.backbone_kwargs={width=4}",
        "optim.batch_size=8", "run.log_every=1", "data.num_workers=0"]


@pytest.fixture
def one_thread():
    """One intra-op thread: tiny CPU steps are much faster on a loaded 2-core machine, and results are the same."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
