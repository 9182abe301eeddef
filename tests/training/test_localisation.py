"""Localisation measures on synthetic maps and masks, the CAM box, mask lookup and crops."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from busviewer.ai.roi_suggest import BoxParams, box_params_for, cam_box, expand_box
from busviewer.training.data import Sample, SampleSet
from busviewer.training.localisation import (
    area_share,
    box_contains,
    box_iou,
    choose_box_params,
    energy_share,
    mean_sd_localisation,
    near_border,
    pointing_hit,
    score_image,
    summarise,
)
from busviewer.training.masks import (
    crop_samples,
    find_mask,
    mask_box,
    mask_centroid,
    read_mask,
    sample_mask,
)


def _disc_mask(h: int, w: int, cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.hypot(xx + 0.5 - cx, yy + 0.5 - cy) <= r


def _gauss(h: int, w: int, cx: float, cy: float, s: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.exp(-((xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2) / (2 * s * s)).astype(np.float32)


def test_pointing_game_inside_scores_1_outside_0() -> None:
    mask = _disc_mask(64, 80, 20, 30, 8)
    assert pointing_hit(_gauss(64, 80, 20, 30, 5), mask) is True
    assert pointing_hit(_gauss(64, 80, 60, 10, 5), mask) is False
    # a map at a lower resolution is resized to the mask first (8x10 -> 64x80)
    small = np.zeros((8, 10), np.float32)
    small[3, 2] = 1.0  # the cell covering (16..24, 24..32): inside the disc
    assert pointing_hit(small, mask) is True
    small = np.zeros((8, 10), np.float32)
    small[0, 9] = 1.0
    assert pointing_hit(small, mask) is False
    # a flat map points nowhere
    assert pointing_hit(np.zeros((64, 80), np.float32), mask) is False
    assert pointing_hit(np.ones((64, 80), np.float32), mask) is False


def test_energy_share_and_area_share() -> None:
    mask = np.zeros((10, 10), bool)
    mask[:, :3] = True  # 30% of the image
    assert area_share(mask) == pytest.approx(0.3)
    uniform = np.ones((10, 10), np.float32)
    assert energy_share(uniform, mask) == pytest.approx(0.3)  # a uniform map gets the area share
    inside = np.where(mask, 1.0, 0.0).astype(np.float32)
    assert energy_share(inside, mask) == pytest.approx(1.0)
    cam = np.zeros((10, 10), np.float32)
    cam[0, 0], cam[0, 9] = 3.0, 1.0
    assert energy_share(cam, mask) == pytest.approx(0.75)
    cam[5, 5] = -10.0  # negative values are clipped, not subtracted
    assert energy_share(cam, mask) == pytest.approx(0.75)
    assert math.isnan(energy_share(np.zeros((10, 10), np.float32), mask))


def test_boxes_iou_centre_and_border() -> None:
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == pytest.approx(1.0)
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert box_iou(None, (0, 0, 1, 1)) == 0.0
    assert box_contains((0, 0, 10, 10), (9.5, 0.5)) and not box_contains((0, 0, 10, 10), (10.5, 5))
    assert near_border((2, 50), (100, 100)) and not near_border((50, 50), (100, 100))
    mask = np.zeros((20, 30), bool)
    mask[5:9, 10:20] = True
    assert mask_box(mask) == (10, 5, 20, 9)
    assert mask_centroid(mask) == pytest.approx((15.0, 7.0))
    assert mask_box(np.zeros((4, 4), bool)) is None
    assert expand_box((10, 10, 20, 30), 0.5, 100, 100) == (5, 0, 25, 40)
    assert expand_box((0, 0, 10, 10), 1.0, 15, 15) == (0, 0, 15, 15)


def test_cam_box_takes_the_component_holding_the_maximum() -> None:
    cam = _gauss(60, 90, 20, 20, 4) + 0.8 * _gauss(60, 90, 34, 20, 4)
    box = cam_box(cam, 0.5, 0.0)
    assert box is not None and box_contains(box, (20, 20)) and not box_contains(box, (34, 20))
    # the half-maximum radius of a Gaussian of sigma 4 is ~4.7 px
    assert 7 <= box[2] - box[0] <= 12 and 7 <= box[3] - box[1] <= 12
    wide = cam_box(cam, 0.5, 1.0)
    assert wide[2] - wide[0] >= 3 * (box[2] - box[0]) - 2
    low = cam_box(cam, 0.1, 0.0)  # a low threshold joins the two blobs
    assert box_contains(low, (34, 20)) and box_contains(low, (20, 20))
    assert cam_box(np.zeros((5, 5), np.float32), 0.5, 0.1) is None


def test_score_image_and_summary() -> None:
    mask = _disc_mask(64, 64, 40, 40, 10)
    good = score_image(_gauss(64, 64, 40, 40, 6), mask, BoxParams(0.5, 0.25), "good")
    bad = score_image(_gauss(64, 64, 4, 4, 6), mask, BoxParams(0.5, 0.25), "bad")
    assert good.hit and good.centre_in and good.iou > 0.4 and not good.near_border
    assert not bad.hit and not bad.centre_in and bad.iou == 0.0 and bad.near_border
    assert good.energy > 3 * good.area > bad.energy
    s = summarise([good, bad])
    assert s["images"] == 2 and s["pointing_game"] == 0.5 and s["box_contains_centre"] == 0.5
    assert s["peak_near_border"] == 0.5
    assert (
        0 < good.box_area < 0.25
        and bad.box_area > 0
        and s["box_area_share"] == pytest.approx((good.box_area + bad.box_area) / 2)
    )
    assert s["energy_to_area"] == pytest.approx(s["energy_inside"] / s["mask_area_share"])
    agg = mean_sd_localisation([s, summarise([good])])
    assert agg["pointing_game"]["mean"] == pytest.approx(0.75) and agg["pointing_game"]["n"] == 2


def test_choose_box_params_meets_the_centre_target_with_the_best_iou() -> None:
    rng = np.random.default_rng(0)
    cams, masks = [], []
    for _ in range(12):
        cx, cy = rng.uniform(20, 44, 2)
        masks.append(_disc_mask(64, 64, cx, cy, 9))
        # the map peaks off-centre: a box without margin often misses the centre
        cams.append(_gauss(64, 64, cx + 7, cy, 3))
    params, table = choose_box_params(cams, masks, fractions=(0.5, 0.8), margins=(0.0, 0.5, 1.0, 2.0))
    assert len(table) == 8 and params.source == "validation"
    chosen = next(r for r in table if (r["fraction"], r["margin"]) == (params.fraction, params.margin))
    assert chosen["box_contains_centre"] >= 0.9
    assert all(r["box_iou"] <= chosen["box_iou"] for r in table if r["box_contains_centre"] >= 0.9)
    assert params.margin > 0.0  # the margin is what reaches the lesion centre here


def test_box_params_from_the_card() -> None:
    class Card:
        metrics = {"localisation": {"box_params": {"fraction": 0.4, "margin": 0.75}}}

    p = box_params_for(Card())
    assert (p.fraction, p.margin, p.source) == (0.4, 0.75, "model card")
    Card.metrics = {}
    assert box_params_for(Card()).source == "default"


# ----------------------------------------------------------------- masks on disk
def _busi_like(root: Path) -> tuple[SampleSet, Path]:
    """Two lesion images with masks (names with spaces and parentheses) and a normal one."""
    (root / "images" / "benign").mkdir(parents=True)
    (root / "images" / "normal").mkdir(parents=True)
    (root / "masks" / "benign").mkdir(parents=True)
    samples = []
    for i, (x0, y0, x1, y1) in enumerate([(10, 20, 30, 40), (40, 4, 60, 14)], start=1):
        img = root / "images" / "benign" / f"benign ({i}).png"
        Image.fromarray(np.full((64, 80, 3), 40, np.uint8)).save(img)
        m = np.zeros((32, 40), np.uint8)  # masks at half the image size: resized (nearest)
        m[y0 // 2 : y1 // 2, x0 // 2 : x1 // 2] = 255
        Image.fromarray(m).save(root / "masks" / "benign" / f"benign ({i})_mask.png")
        samples.append(Sample(img, 0, f"P{i}", original_label="benign"))
    normal = root / "images" / "normal" / "normal (1).png"
    Image.fromarray(np.full((64, 80, 3), 40, np.uint8)).save(normal)
    samples.append(Sample(normal, 0, "P9", original_label="normal"))
    return SampleSet(samples, source="manifest.csv", dropped={"normal": 0}), root / "masks"


def test_mask_lookup_and_lesion_crops(tmp_path: Path) -> None:
    sset, masks = _busi_like(tmp_path)
    first, second, normal = sset.samples
    assert find_mask(masks, first) == masks / "benign" / "benign (1)_mask.png"
    assert find_mask(masks, normal) is None
    m = read_mask(find_mask(masks, first), (64, 80))
    assert m.shape == (64, 80) and mask_box(m) == (10, 20, 30, 40)
    crops = crop_samples(sset, masks, margin=0.5)
    assert [s.path for s in crops.samples] == [first.path, second.path]
    assert crops.dropped["no_mask"] == 1 and "lesion crops" in crops.source
    assert crops.samples[0].roi == (0, 10, 40, 50)  # 20x20 box + 10 px per side
    assert crops.samples[1].roi == (30, 0, 70, 19)  # 20x10 box: clamped at the top
    # the mask of a crop sample is cut to the crop
    cm = sample_mask(masks, crops.samples[0])
    assert cm.shape == (40, 40) and mask_box(cm) == (10, 10, 30, 30)
    assert sample_mask(masks, normal) is None
