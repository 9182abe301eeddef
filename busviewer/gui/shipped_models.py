"""Shipped default models in the GUI: a one-line summary of how a shipped model is stored
(going back to the default is :func:`busviewer.services.models.use_default`)."""

from __future__ import annotations

from typing import Any


def shipping_summary(card: Any) -> str:
    """One line on how a shipped model is stored and what its compression was measured to cost."""
    info = card.shipping if isinstance(getattr(card, "shipping", None), dict) else {}
    comp = info.get("compression") if isinstance(info.get("compression"), dict) else {}
    shards = info.get("shards") if isinstance(info.get("shards"), list) else []
    if not shards:
        return ""
    size = sum(s.get("bytes", 0) for s in shards if isinstance(s, dict)) / 1e6
    used = {"int8": "int8 large layers + fp16", "fp16": "fp16", "none": "float32"}.get(comp.get("used"), "?")
    text = f"{used}, {len(shards)} file(s), {size:.0f} MB, every file's sha256 checked on load"
    eff = comp.get("effect") if isinstance(comp.get("effect"), dict) else None
    if eff:
        auc = eff.get("auc_change")
        text += (
            f"; vs float32 on {eff.get('images')} images: AUC change "
            f"{'n/a' if auc is None else f'{auc:.4f}'}, largest probability change "
            f"{eff.get('max_probability_change', float('nan')):.4f}"
        )
    return text


__all__ = ["shipping_summary"]
