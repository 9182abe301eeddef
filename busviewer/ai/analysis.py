"""Patient analysis: the logic the GUI's AI panel and ``busviewer predict`` share.

Loads the active model of each architecture, predicts every image of a patient,
stores each prediction with the model's sha256 and the image's content hash, and
returns per-model patient verdicts (majority vote, a tie is malignant) at the operating
point in force (:mod:`busviewer.core.operating`; balanced by default).

What is stored: the calibrated probabilities (the card's temperature applied, exactly as
shown) and, as ``label``, the image's call at the operating point in force when it was
analysed. Views of stored results redo the calls from the stored probability at the
reader's current operating point (:func:`busviewer.ai.results.stored_analysis`).

One pass: the forward that gives an image's probabilities also gives its Grad-CAM maps
(:meth:`busviewer.ai.inference.Predictor.predict_with_cams`), which are kept in the
on-disk :class:`~busviewer.ai.cam_cache.CamCache` under the same keys as the predictions
(model sha256, image hash); :meth:`Analyzer.gradcam` serves a stored map without running
any model, so toggling the overlay, switching model or exporting recomputes nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from busviewer.ai.cam_cache import CamCache
from busviewer.ai.feature_guard import FeatureGuard, FeatureGuardError, outside_reason
from busviewer.ai.gradcam import DEFAULT_CAM_LAYER
from busviewer.ai.integrity import NonFiniteOutput, finite_output
from busviewer.ai.modelcard import ModelCard
from busviewer.ai.registry import ModelRegistry
from busviewer.ai.results import (
    ARCHITECTURE_ORDER,
    ImagePrediction,
    ModelVerdict,
    PatientAnalysis,
    summarise,
    thresholds_by_sha,
)
from busviewer.ai.results import stored_analysis as _stored_analysis
from busviewer.core.imageio import DecodedImage, ImageReadError, read_image, sha256_file
from busviewer.core.operating import DEFAULT_OPERATING_POINT, check_operating_point
from busviewer.core.store import ImageRecord, Store

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from busviewer.ai.inference import Predictor

ARCHITECTURE_TITLES = {"ensemble": "Ensemble (AlexNet + ResNet-18)", "vgg16": "VGG-16"}


NO_MODEL_MESSAGE = (
    "No active model — train one (Model > Train...) or import one (Model > Import model...); "
    "from the command line: `busviewer train` or `busviewer models import`."
)


class NoActiveModel(Exception):
    """No model is active; the message says how to get one."""


class Cancelled(Exception):
    """The analysis was cancelled; what was stored before stays stored."""


class Analyzer:
    """Runs the active models over a patient's images (usable headless and from GUI workers)."""

    def __init__(
        self,
        store: Store,
        registry: ModelRegistry | None = None,
        device: str | None = None,
        models: Sequence[str] = (),
        operating_point: str = DEFAULT_OPERATING_POINT,
        cam_cache: CamCache | None = None,
    ) -> None:
        """``models``: ``"name"`` or ``"name:version"`` references used instead of the active
        model of their architecture. ``operating_point``: see :meth:`set_operating_point`.
        ``cam_cache``: where Grad-CAM maps are kept (default: the data directory's)."""
        self.store = store
        self.operating_point = check_operating_point(operating_point)
        self.registry = registry or ModelRegistry()
        self._device_pref = device
        self._overrides = {e.architecture: e for e in (self.registry.get(ref) for ref in models)}
        self._models: dict[str, tuple[object, ModelCard]] = {}
        self._predictors: dict[str, Predictor] = {}
        self._guards: dict[str, FeatureGuard | None] = {}  # each loaded card's feature guard, parsed once
        self._lock = threading.RLock()  # one model use at a time (GUI workers share the Analyzer)
        self._device: Any = None  # a torch.device once the models are loaded (torch is imported lazily)
        self.cam_cache = cam_cache if cam_cache is not None else CamCache()

    # ---------------------------------------------------------------- models
    @property
    def device_name(self) -> str:
        return str(self._device) if self._device is not None else (self._device_pref or "auto")

    @property
    def cards(self) -> dict[str, ModelCard]:
        return {arch: card for arch, (_, card) in self._models.items()}

    def set_operating_point(self, operating_point: str) -> None:
        """The operating point whose thresholds make the image calls of later analyses."""
        self.operating_point = check_operating_point(operating_point)

    def thresholds(self) -> dict[str, dict[str, float]]:
        """Threshold per operating point of each loaded model, by weights sha256."""
        return thresholds_by_sha(list(self.cards.values()))

    def load_models(self, architectures: Sequence[str] = ARCHITECTURE_ORDER) -> dict[str, ModelCard]:
        """Load the active model of each architecture (reloads when the active one changed)."""
        from busviewer.ai.device import choose_device
        from busviewer.ai.inference import Predictor

        if self._overrides:  # models named explicitly: only those
            architectures = tuple(self._overrides)
        with self._lock:
            self._device = choose_device(self._device_pref)
            for arch in architectures:
                entry = self._overrides.get(arch) or self.registry.active(arch)
                if entry is None:
                    self._models.pop(arch, None)
                    self._predictors.pop(arch, None)
                    self._guards.pop(arch, None)
                    continue
                loaded = self._models.get(arch)
                if loaded is not None and (loaded[1].ref, loaded[1].sha256) == (entry.card.ref, entry.card.sha256):
                    continue
                model, card = self.registry.load(entry, device=self._device)
                self._models[arch] = (model, card)
                self._predictors[arch] = Predictor(model, card, device=self._device)
                self._guards[arch] = _feature_guard(card)
                self.store.record_model_version(card.to_dict())
            if not self._models:
                raise NoActiveModel(NO_MODEL_MESSAGE)
            return self.cards

    def _ensure_loaded(self) -> None:
        if not self._models:
            self.load_models()

    # ------------------------------------------------------------- analysis
    def _frame(self, rec: ImageRecord, frame: int) -> np.ndarray:
        """The frame's pixels, after checking the file is still the imported one."""
        if not rec.source_path.is_file():
            raise ImageReadError(rec.source_path, "file not found (moved or deleted since import)")
        if sha256_file(rec.source_path) != rec.content_hash:
            raise ImageReadError(rec.source_path, "file changed since import (content hash differs); re-import it")
        img: DecodedImage = read_image(rec.source_path)
        return img.frame(min(frame, img.frame_count - 1))

    def analyse_patient(
        self,
        patient_key: str,
        progress: Callable[[int, int], None] | None = None,
        cancel: threading.Event | None = None,
        frame: int = 0,
    ) -> PatientAnalysis:
        """Predict every image of ``patient_key`` with every loaded model and store the results."""
        self._ensure_loaded()
        records = self.store.images(patient_key)
        if not records:
            raise KeyError(f"no images for patient {patient_key!r}")
        problems: list[str] = []
        pixels: dict[int, np.ndarray] = {}
        total = len(records) * (1 + len(self._models))
        done = 0
        for rec in records:
            if cancel is not None and cancel.is_set():
                raise Cancelled(patient_key)
            try:
                pixels[rec.id] = self._frame(rec, frame)
            except ImageReadError as exc:
                problems.append(str(exc))
            done += 1
            if progress:
                progress(done, total)
        ids = list(pixels)
        hashes = {r.id: r.content_hash for r in records}
        paths = {r.id: r.source_path for r in records}
        predictions: dict[tuple[int, str], ImagePrediction] = {}
        rows: list[dict] = []
        cams: list[tuple[str, str, int, str, np.ndarray]] = []
        distances: dict[str, tuple[FeatureGuard, np.ndarray]] = {}  # the feature guard's, per image of ``ids``
        frames = {r.id: min(frame, max(r.frame_count, 1) - 1) for r in records}
        with self._lock:
            op = self.operating_point
            for arch, predictor in self._predictors.items():
                if cancel is not None and cancel.is_set():
                    raise Cancelled(patient_key)
                card = self._models[arch][1]
                predictor.operating_point = op
                feats: list[np.ndarray] = []
                results, maps = (
                    predictor.predict_with_cams([pixels[i] for i in ids], features_out=feats) if ids else ([], [])
                )
                guard = self._guards.get(arch)
                if guard is not None and feats:
                    distances[arch] = (guard, guard.distance(np.stack(feats)))
                for image_id, res, fmap in zip(ids, results, maps):
                    if not finite_output(res.probabilities, res.malignant_probability):
                        problems.append(_non_finite_message(paths[image_id], card))  # nothing stored
                        continue
                    pred = _to_image_prediction(res, image_id, frame, None, card)
                    predictions[(image_id, arch)] = pred
                    rows.append(_row(pred, card, hashes[image_id]))
                    cams.append((card.sha256, hashes[image_id], frames[image_id], DEFAULT_CAM_LAYER, fmap))
                done += len(records)
                if progress:
                    progress(done, total)
        if rows:
            self.store.add_predictions(rows)
        self.cam_cache.put_many(cams)
        self._record_guard([r for r in records if r.id in pixels], pixels, ids, distances)
        return summarise(patient_key, predictions, self.thresholds(), op, tuple(problems))

    def _record_guard(
        self,
        records: Sequence[ImageRecord],
        pixels: dict[int, np.ndarray],
        ids: list[int],
        distances: dict[str, tuple[FeatureGuard, np.ndarray]],
    ) -> None:
        """Record the input guard's finding of each analysed image: the pixel checks (colour,
        photometric) and, for models whose card has one, the feature distances (rows of ``ids``)."""
        from busviewer.core.input_guard import OUTSIDE_TEXT, GuardResult, assess_pixels
        from busviewer.core.store.flags import image_flags, record_flag

        row = {image_id: n for n, image_id in enumerate(ids)}
        known = image_flags(self.store, [r.id for r in records])
        for rec in records:
            result = assess_pixels(pixels[rec.id], rec.photometric)
            if not result.outside:
                for arch, (guard, dist) in distances.items():
                    d = float(dist[row[rec.id]])
                    if guard.outside(d):
                        title = ARCHITECTURE_TITLES.get(arch, arch)
                        result = GuardResult(True, f"{OUTSIDE_TEXT}: {outside_reason(d, guard, title)}")
                        break
            was = known.get(rec.id)
            finding = (rec.content_hash, result.outside, result.reason)
            if was is None or (was.image_hash, was.outside, was.reason) != finding:  # unchanged: not rewritten
                record_flag(self.store, rec.id, rec.content_hash, result)

    def stored_analysis(self, patient_key: str, operating_point: str | None = None) -> PatientAnalysis | None:
        """The latest stored predictions of the patient at ``operating_point`` (default: the
        analyzer's), without running any model."""
        return _stored_analysis(self.store, patient_key, operating_point or self.operating_point)

    def classify_roi(self, roi_id: int) -> dict[str, ImagePrediction]:
        """Classify a saved ROI crop with every loaded model (stored like image predictions)."""
        self._ensure_loaded()
        from busviewer.ai.preprocess import crop

        roi = self.store.roi(roi_id)
        rec = self.store.image(roi.image_id)
        patch = crop(self._frame(rec, roi.frame), roi.box)
        out: dict[str, ImagePrediction] = {}
        rows = []
        with self._lock:
            for arch, predictor in self._predictors.items():
                card = self._models[arch][1]
                predictor.operating_point = self.operating_point
                res = predictor.predict([patch])[0]
                if not finite_output(res.probabilities, res.malignant_probability):
                    raise NonFiniteOutput(_non_finite_message(rec.source_path, card))
                out[arch] = _to_image_prediction(res, rec.id, roi.frame, roi.id, card)
                rows.append(_row(out[arch], card, rec.content_hash))
        self.store.add_predictions(rows)
        return out

    def gradcam(self, image_id: int, architecture: str, frame: int = 0) -> np.ndarray:
        """Grad-CAM of ``architecture`` on one image (fused map for the ensemble), ``(H, W)
        float32`` in [0, 1]: the stored map when the image was analysed with this model
        (no model runs), else computed now and stored."""
        self._ensure_loaded()
        import torch

        from busviewer.ai.gradcam import to_image_heatmap

        if architecture not in self._models:
            raise NoActiveModel(f"no active {ARCHITECTURE_TITLES.get(architecture, architecture)} model")
        rec = self.store.image(image_id)
        frame = min(frame, max(rec.frame_count, 1) - 1)
        card = self._models[architecture][1]
        fmap = self.cam_cache.get(card.sha256, rec.content_hash, frame, DEFAULT_CAM_LAYER)
        height, width = rec.rows, rec.columns
        if fmap is None:
            pixels = self._frame(rec, frame)
            height, width = pixels.shape[:2]
            with self._lock:
                _, maps = self._predictors[architecture].predict_with_cams([pixels])
            fmap = maps[0]
            self.cam_cache.put(card.sha256, rec.content_hash, frame, DEFAULT_CAM_LAYER, fmap)
        return to_image_heatmap(torch.from_numpy(fmap), height, width)


def _feature_guard(card: ModelCard) -> FeatureGuard | None:
    """The card's feature guard; a malformed one is logged and not used (the card's integrity
    seal already refuses a tampered card, so this is an older or hand-made card)."""
    try:
        return FeatureGuard.from_card(card.feature_guard)
    except FeatureGuardError as exc:
        log.warning("model %s: feature guard not used: %s", card.ref, exc)
        return None


def _non_finite_message(path: object, card: ModelCard) -> str:
    return (
        f"{path}: the {card.architecture} model {card.ref} gave a non-finite output (NaN/inf) for this "
        "image; no result was stored (the model's weights may be damaged)"
    )


def _to_image_prediction(res: Any, image_id: int, frame: int, roi_id: int | None, card: ModelCard) -> ImagePrediction:
    """``res``: an inference Prediction (inference.py imports torch, so it is not named here)."""
    probs = {k: float(v) for k, v in res.probabilities.items()}
    return ImagePrediction(
        image_id=image_id,
        frame=frame,
        roi_id=roi_id,
        architecture=card.architecture,
        model_name=card.name,
        model_version=card.version,
        probabilities=probs,
        malignant_probability=float(res.malignant_probability),
        label=str(res.label),
        model_sha256=card.sha256,
    )


def _row(pred: ImagePrediction, card: ModelCard, image_hash: str) -> dict:
    return dict(
        image_id=pred.image_id,
        roi_id=pred.roi_id,
        frame=pred.frame,
        model_name=card.name,
        model_version=card.version,
        architecture=card.architecture,
        model_sha256=card.sha256,
        image_hash=image_hash,
        label=pred.label,
        malignant_probability=pred.malignant_probability,
        probabilities=pred.probabilities,
    )


__all__ = [
    "ARCHITECTURE_ORDER",
    "Analyzer",
    "Cancelled",
    "ImagePrediction",
    "ModelVerdict",
    "NoActiveModel",
    "PatientAnalysis",
]
