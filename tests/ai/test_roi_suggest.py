"""The suggested ROI: a trained-in-test model's box covers the blob it learned, through the
real store, registry and Analyzer; accepting stores an audited reader ROI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from synthetic import quadrant_discs

from busviewer.ai.gradcam import gradcam_batch
from busviewer.ai.roi_suggest import accept_suggestion, cam_box, reject_suggestion, suggest_roi
from busviewer.training.localisation import box_contains, box_iou, choose_box_params

pytestmark = pytest.mark.usefixtures("one_torch_thread")
H, W, RADIUS = 80, 112, 9


def _disc_masks(centres: list[tuple[float, float]]) -> list[np.ndarray]:
    yy, xx = np.mgrid[0:H, 0:W]
    return [np.hypot(xx + 0.5 - cx, yy + 0.5 - cy) <= RADIUS for cx, cy in centres]


@pytest.fixture(scope="module")
def blob_setup(blob_ensemble, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The blob model registered and active (box parameters chosen on validation images),
    and test images with a disc imported into a store."""
    from busviewer.ai.registry import ModelRegistry
    from busviewer.core.importer import import_paths
    from busviewer.core.store import Store

    model, card = blob_ensemble
    val_images, val_labels, val_centres = quadrant_discs(24, np.random.default_rng(11), H, W, RADIUS)
    pos = [i for i, lab in enumerate(val_labels) if lab]
    maps = [r.heatmap for r in gradcam_batch(model, card, [val_images[i] for i in pos], ["malignant"] * len(pos))]
    params, _ = choose_box_params(maps, _disc_masks([val_centres[i] for i in pos]))
    root = tmp_path_factory.mktemp("suggest")
    registry = ModelRegistry(user_dir=root / "models", shipped_dir=root / "shipped")
    (root / "shipped").mkdir()
    card = card.with_updates(
        version=0, metrics={"localisation": {"box_params": {"fraction": params.fraction, "margin": params.margin}}}
    )
    entry = registry.save(model, card)
    registry.activate(entry.name, entry.version)
    images, labels, centres = quadrant_discs(24, np.random.default_rng(12), H, W, RADIUS)
    folder = root / "study" / "BLOB-1"
    folder.mkdir(parents=True)
    truth = {}
    for i, (img, centre) in enumerate(zip(images, centres)):
        if centre is not None:
            Image.fromarray(img).save(folder / f"disc{i:02d}.png")
            truth[f"disc{i:02d}.png"] = centre
    store = Store(root / "store.sqlite")
    import_paths(store, [root / "study"])
    yield store, registry, entry, truth, params
    store.close()


def test_suggested_box_covers_the_learned_blob(blob_setup) -> None:  # type: ignore[no-untyped-def]
    from busviewer.ai.analysis import Analyzer

    store, registry, entry, truth, params = blob_setup
    analyzer = Analyzer(store, registry, device="cpu")
    contains, ious, areas, flipped = [], [], [], []
    for rec in store.images("BLOB-1"):
        cx, cy = truth[rec.source_path.name]
        s = suggest_roi(analyzer, rec.id)
        assert s is not None and s.model == entry.ref and s.architecture == "ensemble"
        assert (s.fraction, s.margin, s.params_source) == (params.fraction, params.margin, "model card")
        contains.append(box_contains(s.box, (cx, cy)))
        disc = (cx - RADIUS, cy - RADIUS, cx + RADIUS, cy + RADIUS)
        ious.append(box_iou(s.box, disc))
        areas.append((s.box[2] - s.box[0]) * (s.box[3] - s.box[1]) / (H * W))
        # control: the same box rule on the point-mirrored map misses the blob
        cam = analyzer.gradcam(rec.id, "ensemble")
        flipped.append(box_contains(cam_box(cam[::-1, ::-1], s.fraction, s.margin), (cx, cy)))
    assert np.mean(contains) >= 0.9, contains
    assert np.mean(areas) <= 0.3, f"the box covers the blob by covering the image: {np.mean(areas):.2f}"
    assert np.mean(ious) > 0.1  # a whole-image box would get 0.04
    assert np.mean(flipped) <= 0.25


def test_accept_and_reject_are_audited(blob_setup) -> None:  # type: ignore[no-untyped-def]
    from busviewer.ai.analysis import Analyzer

    store, registry, entry, _truth, _ = blob_setup
    analyzer = Analyzer(store, registry, device="cpu")
    first, second = store.images("BLOB-1")[:2]
    s = suggest_roi(analyzer, first.id)
    moved = (s.box[0] + 2, s.box[1] + 1, s.box[2] + 2, s.box[3] + 1)
    roi = accept_suggestion(store, s, moved, user="reader1")
    assert store.rois(first.id)[-1].id == roi.id and roi.user == "reader1"
    assert roi.box == tuple(min(v, lim) for v, lim in zip(moved, (W, H, W, H)))
    log = store.audit_log("roi", roi.id)
    assert [a.action for a in log] == ["add_roi", "accept_suggested_roi"]
    detail = json.loads(log[-1].new_value)
    assert detail["model"] == entry.ref and detail["box"] == list(s.box) and detail["moved"] is True
    assert detail["accepted_box"] == list(roi.box) and log[-1].user == "reader1"
    preds = analyzer.classify_roi(roi.id)  # the existing ROI classify path
    assert preds["ensemble"].roi_id == roi.id
    assert store.latest_predictions([first.id], roi_id=roi.id)
    s2 = suggest_roi(analyzer, second.id)
    reject_suggestion(store, s2)
    assert store.rois(second.id) == []
    assert store.audit_log("image", second.id)[-1].action == "reject_suggested_roi"
