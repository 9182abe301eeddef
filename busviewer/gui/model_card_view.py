"""The model manager's card view: a model card (``registry.ModelEntry``) as reader-friendly HTML,
and the architecture titles the manager's table and card share. Plain Python, no widgets."""

from __future__ import annotations

import html
from typing import Any

from busviewer.gui.shipped_models import shipping_summary
from busviewer.services.training_runs import local_time

ARCH_TITLES = {"ensemble": "Ensemble (AlexNet + ResNet-18)", "vgg16": "VGG-16"}
ARCH_SHORT = {"ensemble": "ensemble", "vgg16": "VGG-16"}


def _num(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else ("n/a" if v is None else str(v))


def metric_text(v: Any) -> str:
    """A test metric in the manager's table: three decimals, or a dash when the card has none."""
    return f"{v:.3f}" if isinstance(v, float) else "—"


def card_html(entry: Any) -> str:
    """The model card as a reader-friendly summary."""
    c = entry.card
    e = html.escape
    rows = [
        ("Model", f"{c.name} v{c.version}" + ("  <b>(active)</b>" if entry.active else "")),
        ("Architecture", ARCH_TITLES.get(c.architecture, c.architecture)),
        (
            "Input",
            f"{'B-mode' if c.input_mode == 'bmode' else 'B-mode + strain elastography'}, "
            f"{c.input_size}×{c.input_size} pixels",
        ),
        ("Created", e(local_time(c.created))),
        (
            "Started from",
            e(
                f"{c.parent.replace(':', ' v')} (fine-tuned from it)"
                if c.parent
                else {"imagenet": "ImageNet weights", "random": "random initialisation"}.get(
                    c.pretrained_init, str(c.pretrained_init)
                )
            ),
        ),
        (
            "Origin",
            "shipped with busviewer"
            if entry.location == "shipped"
            else ("trained here" if (c.training or {}).get("run_dir") else "added here (imported)"),
        ),
        ("File", e(str(entry.weights_path))),
        ("sha256", f"<code>{e(c.sha256[:16])}…</code>" if c.sha256 else "—"),
    ]
    if c.description:
        rows.append(("Description", e(c.description)))
    if shipping_summary(c):
        rows.append(("Stored as", e(shipping_summary(c))))
    t = c.training if isinstance(c.training, dict) else {}
    data = t.get("data") if isinstance(t.get("data"), dict) else {}
    if data:
        ipc = data.get("images_per_class") or {}
        ppc = data.get("patients_per_class") or {}
        rows.append(
            (
                "Training data",
                e(
                    f"{data.get('images', '?')} images of {data.get('patients', '?')} patients "
                    f"(benign {ipc.get('benign', '?')} images / {ppc.get('benign', '?')} patients, "
                    f"malignant {ipc.get('malignant', '?')} / {ppc.get('malignant', '?')}); "
                    "label sources: "
                    f"{', '.join(f'{k} {v}' for k, v in (data.get('label_sources') or {}).items()) or '?'}"
                ),
            )
        )
    split = t.get("split") if isinstance(t.get("split"), dict) else {}
    counts = split.get("counts") if isinstance(split.get("counts"), dict) else {}
    if counts:
        rows.append(
            (
                "Split (patients)",
                e(", ".join(f"{part} {c2.get('patients', '?')}" for part, c2 in counts.items() if isinstance(c2, dict)))
                + (f", {split.get('cv_folds')}-fold CV" if split.get("cv_folds") else ""),
            )
        )
    settings = t.get("settings") if isinstance(t.get("settings"), dict) else {}
    if settings:
        rows.append(
            (
                "Settings",
                e(
                    f"{settings.get('optimizer', 'Adam')} lr {settings.get('lr')}, "
                    f"up to {settings.get('epochs')} epochs "
                    f"(patience {settings.get('patience')}), batch {settings.get('batch_size')}, "
                    f"balancing {settings.get('balance')}, seed {settings.get('seed')}"
                ),
            )
        )
    if t.get("device"):
        rows.append(
            (
                "Trained on",
                e(
                    f"{t.get('device')}"
                    + (f", {t.get('wall_s'):.0f} s" if isinstance(t.get("wall_s"), (int, float)) else "")
                ),
            )
        )
    img, pat = c.test_metrics()
    out = ["<table cellspacing='2' cellpadding='2'>"]
    out += [f"<tr><td valign='top'><b>{k}</b></td><td>{v}</td></tr>" for k, v in rows]
    out.append("</table>")
    if img or pat:
        keys = [
            ("accuracy", "Accuracy"),
            ("sensitivity", "Sensitivity"),
            ("specificity", "Specificity"),
            ("precision", "Precision"),
            ("f1", "F1"),
            ("auc", "AUC"),
        ]
        out.append("<p><b>Test metrics</b> (held-out test patients of its training run)</p>")
        out.append(
            "<table cellspacing='2' cellpadding='3' border='0'><tr><th></th><th>per image</th><th>per patient</th></tr>"
        )
        for k, title in keys:
            out.append(
                f"<tr><td>{title}</td><td align='right'>{_num(img.get(k))}</td>"
                f"<td align='right'>{_num(pat.get(k))}</td></tr>"
            )
        out.append(
            f"<tr><td>n</td><td align='right'>{_num(img.get('n'))}</td>"
            f"<td align='right'>{_num(pat.get('n'))}</td></tr></table>"
        )
        cv = c.metrics.get("cv") if isinstance(c.metrics, dict) else None
        if isinstance(cv, dict) and isinstance(cv.get("image"), dict):
            auc = cv["image"].get("auc") or {}
            if isinstance(auc, dict) and auc.get("mean") is not None:
                sd = f" ± {auc['sd']:.3f}" if auc.get("sd") is not None else ""
                out.append(f"<p>Cross-validation image AUC {auc['mean']:.3f}{sd} ({auc.get('n')} folds)</p>")
    else:
        out.append("<p><i>No test metrics on this card.</i></p>")
    return "".join(out)


__all__ = ["ARCH_SHORT", "ARCH_TITLES", "card_html", "metric_text"]
