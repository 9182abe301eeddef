from __future__ import annotations

import pytest
import torch

from busviewer.ai import device as dev
from busviewer.ai.device import DeviceUnavailableError, choose_device, describe_device


@pytest.fixture
def no_accelerators(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dev, "_mps_available", lambda: False)
    monkeypatch.delenv("BUSVIEWER_DEVICE", raising=False)


def test_falls_back_to_cpu(no_accelerators) -> None:
    assert choose_device() == torch.device("cpu")
    assert choose_device("auto") == torch.device("cpu")
    assert dev.available_devices() == ["cpu"]


def test_this_machine_auto_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    """The expectation comes from torch itself, not from busviewer's device module."""
    monkeypatch.delenv("BUSVIEWER_DEVICE", raising=False)
    mps = getattr(torch.backends, "mps", None)
    expected = "cuda" if torch.cuda.is_available() else ("mps" if mps is not None and mps.is_available() else "cpu")
    assert choose_device().type == expected
    assert dev.available_devices()[-1] == "cpu"  # the CPU is always there, last


def test_order_cuda_then_mps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BUSVIEWER_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dev, "_mps_available", lambda: True)
    assert choose_device() == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert choose_device() == torch.device("cuda")


def test_env_and_argument_override(no_accelerators, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUSVIEWER_DEVICE", "cpu")
    assert choose_device() == torch.device("cpu")
    monkeypatch.setenv("BUSVIEWER_DEVICE", "cuda")
    with pytest.raises(DeviceUnavailableError, match="BUSVIEWER_DEVICE=cuda"):
        choose_device()
    assert choose_device("cpu") == torch.device("cpu")  # the argument wins


@pytest.mark.parametrize("name", ["cuda", "cuda:1", "mps"])
def test_unavailable_explicit_choice_is_an_error(no_accelerators, name: str) -> None:
    with pytest.raises(DeviceUnavailableError, match=name.split(":")[0]):
        choose_device(name)


def test_unknown_device(no_accelerators) -> None:
    with pytest.raises(DeviceUnavailableError, match="unknown device"):
        choose_device("gpu-please")


def test_describe() -> None:
    assert describe_device("cpu").startswith("cpu (")
