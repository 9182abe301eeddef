"""What the model registry lists: :class:`ModelEntry` and the scan of a models folder.

:func:`scan_folder` finds the cards (and their weights) in a shipped or user folder,
:func:`read_active_refs` reads the user's ``active.json`` choices and :func:`newest_shipped`
picks the default. Never imports torch.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from busviewer.ai.architectures import ARCHITECTURES
from busviewer.ai.modelcard import ModelCard, ModelCardError
from busviewer.ai.weights_io import CARD_SUFFIX, WEIGHTS_SUFFIX

log = logging.getLogger("busviewer.ai.registry")  # the registry's messages keep its logger name

ACTIVE_FILE = "active.json"
Location = Literal["shipped", "user"]
Rows = list[tuple[ModelCard, Path, Path, Location]]  # (card, weights, card file, where)


@dataclass(frozen=True)
class ModelEntry:
    """A registered model version."""

    card: ModelCard
    weights_path: Path
    card_path: Path
    location: Location
    active: bool = False

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def version(self) -> int:
        return self.card.version

    @property
    def architecture(self) -> str:
        return self.card.architecture

    @property
    def ref(self) -> str:
        """``"name:version"``."""
        return self.card.ref


def scan_folder(directory: Path, location: Location, shipped_dir: Path) -> list[tuple[ModelCard, Path, Path]]:
    """Cards with their weights; shipped models may sit in ``<name>/`` folders, sharded
    (their "weights path" is then that folder)."""
    found: list[tuple[ModelCard, Path, Path]] = []
    if not directory.is_dir():
        return found
    cards = sorted(directory.glob(f"*{CARD_SUFFIX}"))
    if location == "shipped":
        cards += sorted(p for p in directory.glob(f"*/*{CARD_SUFFIX}") if not p.parent.name.startswith("."))
    for card_path in cards:
        if card_path.name == ACTIVE_FILE or card_path.name.startswith("."):
            continue
        try:
            card = ModelCard.read(card_path)
        except ModelCardError as exc:
            log.warning("skipping %s model card: %s", location, exc)
            continue
        if card_path.stem != card.stem:
            log.warning(
                "skipping %s: its card describes %s (expected file name %s%s)",
                card_path,
                card.ref,
                card.stem,
                CARD_SUFFIX,
            )
            continue
        if isinstance(card.shipping, dict) and "shards" in card.shipping:
            if location == "shipped":  # shards are checked on load
                found.append((card, card_path.parent, card_path))
            else:
                log.warning("skipping %s: sharded models are only read from %s", card_path, shipped_dir)
            continue
        weights = card_path.with_suffix(WEIGHTS_SUFFIX)
        if not weights.is_file():
            log.info("%s model card %s has no weights file (%s); not listed", location, card.ref, weights)
            continue
        found.append((card, weights, card_path))
    return found


def read_active_refs(path: Path) -> dict[str, str]:
    """The user's active-model choices in ``path`` (architecture -> ref); {} if missing or unreadable."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("%s is unreadable (%s); no model choice in effect", path, exc)
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if k in ARCHITECTURES and isinstance(v, str)}


def newest_shipped(rows: Rows, architecture: str) -> str | None:
    """Ref of the newest shipped model of ``architecture`` among ``rows``, or None."""
    shipped = [r[0] for r in rows if r[3] == "shipped" and r[0].architecture == architecture]
    if not shipped:
        return None
    best = max(shipped, key=lambda c: (c.created, c.version, c.name))
    return best.ref


__all__ = ["ACTIVE_FILE", "Location", "ModelEntry", "Rows", "newest_shipped", "read_active_refs", "scan_folder"]
