"""The model architectures busviewer knows, as plain names (no torch import).

:mod:`busviewer.ai.networks` builds them; model cards, the registry's listing and the CLI
only need the names, and must not pay torch's import (seconds) to read them.
"""

from __future__ import annotations

ARCHITECTURES: tuple[str, ...] = ("ensemble", "vgg16")
VARIANTS: tuple[str, ...] = ("classic", "bn")
INPUT_CHANNELS: dict[str, int] = {"bmode": 3, "bse": 4}
