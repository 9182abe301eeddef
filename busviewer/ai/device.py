"""Choosing the torch device: CUDA, then Apple MPS, then CPU.

The choice can be forced with an argument or the environment variable
``BUSVIEWER_DEVICE`` (``auto``, ``cpu``, ``cuda``, ``cuda:1``, ``mps``).
"""

from __future__ import annotations

import os

import torch

ENV_VAR = "BUSVIEWER_DEVICE"


class DeviceUnavailableError(RuntimeError):
    """An explicitly requested device is not available on this machine."""


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available_devices() -> list[str]:
    """Names of the usable devices, best first (``cpu`` always last)."""
    names: list[str] = []
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        names.append("mps")
    names.append("cpu")
    return names


def choose_device(preference: str | torch.device | None = None) -> torch.device:
    """Return the device to run models on.

    ``preference`` (or else ``$BUSVIEWER_DEVICE``) may be ``auto``/empty (CUDA, then
    MPS, then CPU) or an explicit device; an explicit device that is not available
    raises :class:`DeviceUnavailableError` instead of silently falling back.
    """
    source = "argument"
    if preference is None:
        preference = os.environ.get(ENV_VAR) or None
        source = f"{ENV_VAR}={preference}"
    if isinstance(preference, torch.device):
        preference = str(preference)
    pref = (preference or "auto").strip().lower()
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(pref)
    except (RuntimeError, ValueError):
        raise DeviceUnavailableError(
            f"unknown device {preference!r} (from {source}); use auto, cpu, cuda, cuda:N or mps"
        ) from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            built = torch.version.cuda
            why = (
                f"this torch is built with CUDA {built} but no CUDA device/driver is usable"
                if built
                else "this torch build has no CUDA support"
            )
            raise DeviceUnavailableError(
                f"device {preference!r} requested (from {source}) but {why}; "
                f"available: {', '.join(available_devices())}"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceUnavailableError(
                f"device {preference!r} requested (from {source}) but only "
                f"{torch.cuda.device_count()} CUDA device(s) exist"
            )
        return device
    if device.type == "mps":
        if not _mps_available():
            raise DeviceUnavailableError(
                f"device {preference!r} requested (from {source}) but Apple MPS "
                f"is not available; available: {', '.join(available_devices())}"
            )
        return device
    raise DeviceUnavailableError(
        f"unsupported device type {device.type!r} (from {source}); use auto, cpu, cuda, cuda:N or mps"
    )


def describe_device(device: torch.device | str) -> str:
    """Human-readable description, e.g. ``cuda:0 (NVIDIA H100)`` or ``cpu (2 threads)``."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)
