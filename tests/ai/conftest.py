"""Fixtures of the AI tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's torch work on one thread (restored afterwards): on a shared 2-core
    machine, OpenMP threads waiting on each other make small batches up to 10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
