"""A bounded run of the reader fuzz harness (``benchmarks/fuzz_decode.py``): mutated
pydicom-data ultrasound files and BUSI PNGs read by the real reader in watched caller
processes; no caller may die or hang, every failure must be an ImageReadError naming the
file, and no non-finite or unphysical geometry may be accepted."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUSI = Path(os.environ.get("BUSVIEWER_BUSI", REPO.parent / "shared" / "data" / "busi"))
sys.path.insert(0, str(REPO / "benchmarks"))

import fuzz_decode  # noqa: E402


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_bounded_fuzz_run_has_no_failures() -> None:
    pytest.importorskip("data_store")
    busi = BUSI / "images" if (BUSI / "images").is_dir() else None  # PNG seeds when present
    result = fuzz_decode.run_fuzz(300, seed=15, workers=1, busi=busi, busi_count=10, hang_s=300, include_large=False)
    print(result.report())
    assert result.mutants == 300
    assert result.failures == 0, result.report()
    assert result.outcomes["ok"] > 0  # some mutants still decode
    errors = {k for k in result.outcomes if k.startswith("error: ")}
    assert {"error: truncated", "error: header inconsistency refused"} <= errors, result.report()
