"""Model cards: the JSON description stored next to every ``.safetensors`` weights file.

A card says what a weights file is (architecture, input mode and size, normalisation,
class names), where it came from (training summary, parent version, initialisation) and
how good it is (metrics). Its ``sha256`` ties it to exactly one weights file.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from busviewer.ai.architectures import ARCHITECTURES, INPUT_CHANNELS, VARIANTS
from busviewer.core.operating import (
    DEFAULT_OPERATING_POINT,
    OPERATING_POINTS,
    card_temperature,
    card_thresholds,
    threshold_for,
)

#: ImageNet RGB statistics (torchvision).
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
#: Grey statistics of ImageNet under the ITU-R BT.601 luma weights used for B-mode grey.
LUMA_WEIGHTS: tuple[float, float, float] = (0.299, 0.587, 0.114)
IMAGENET_GREY_MEAN: float = round(sum(w * m for w, m in zip(LUMA_WEIGHTS, IMAGENET_MEAN)), 4)
IMAGENET_GREY_STD: float = round(sum(w * s for w, s in zip(LUMA_WEIGHTS, IMAGENET_STD)), 4)

DEFAULT_CLASSES: tuple[str, ...] = ("benign", "malignant")
CARD_FORMAT = 1
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_PARENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}:[1-9][0-9]*$")


class ModelCardError(ValueError):
    """A model card is missing a field or has an invalid value."""


def default_normalisation(input_mode: str) -> dict[str, list[float]]:
    """ImageNet mean/std per input channel: RGB for ``bmode``; grey then RGB for ``bse``."""
    if input_mode == "bse":
        return {
            "mean": [IMAGENET_GREY_MEAN, *IMAGENET_MEAN],
            "std": [IMAGENET_GREY_STD, *IMAGENET_STD],
        }
    if input_mode == "bmode":
        return {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    raise ModelCardError(f"unknown input_mode {input_mode!r}; expected one of {list(INPUT_CHANNELS)}")


def _now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


@dataclass
class ModelCard:
    """Description of one model version (see module docstring).

    ``version`` 0 means "not yet registered": :meth:`ModelRegistry.save` assigns the
    number. ``sha256`` is empty until the weights are written.
    """

    name: str
    version: int
    architecture: str
    input_mode: str = "bmode"
    input_size: int = 224
    normalisation: dict[str, list[float]] | None = None
    classes: list[str] = field(default_factory=lambda: list(DEFAULT_CLASSES))
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=_now_iso)
    sha256: str = ""
    parent: str | None = None
    pretrained_init: str = "imagenet"
    description: str = ""
    variant: str = "classic"  # network variant (busviewer.ai.architectures.VARIANTS); older cards: classic
    #: Temperature scaling fitted on the validation patients: {"temperature": T, ...} (None: T = 1).
    calibration: dict[str, Any] | None = None
    #: {operating point: threshold on the calibrated malignant probability} (None: 0.5 everywhere).
    operating_points: dict[str, float] | None = None
    #: Shipped (sharded, compressed) weights: shard index, compression and its measured
    #: effect, regression images (``busviewer.ai.shards`` / ``shipping``). None: one file.
    shipping: dict[str, Any] | None = None
    #: The training images' feature summary for the feature-distance input guard
    #: (:mod:`busviewer.ai.feature_guard`); None: the model has no such guard.
    feature_guard: dict[str, Any] | None = None
    #: sha256 over the card's canonical content and its weight files' hashes
    #: (:mod:`busviewer.ai.integrity`); None on cards written before it existed.
    integrity: str | None = None

    def __post_init__(self) -> None:
        if self.normalisation is None and isinstance(self.input_mode, str) and self.input_mode in INPUT_CHANNELS:
            self.normalisation = default_normalisation(self.input_mode)
        self.validate(require_registered=False)

    # -- derived -------------------------------------------------------------------
    @property
    def ref(self) -> str:
        """``"name:version"`` (the form used for ``parent``)."""
        return f"{self.name}:{self.version}"

    @property
    def stem(self) -> str:
        """File stem ``<name>-v<version>`` of the weights and card files."""
        return f"{self.name}-v{self.version}"

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return INPUT_CHANNELS[self.input_mode]

    @property
    def mean(self) -> list[float]:
        assert self.normalisation is not None
        return list(self.normalisation["mean"])

    @property
    def std(self) -> list[float]:
        assert self.normalisation is not None
        return list(self.normalisation["std"])

    @property
    def temperature(self) -> float:
        """The softmax temperature (1.0 for a card without calibration)."""
        return card_temperature(self)

    @property
    def thresholds(self) -> dict[str, float]:
        """Threshold per operating point (0.5 each for a card without operating points)."""
        return card_thresholds(self)

    def threshold(self, operating_point: str = DEFAULT_OPERATING_POINT) -> float:
        """The threshold of one operating point (ValueError for an unknown name)."""
        return threshold_for(self, operating_point)

    def test_metrics(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(image-wise, patient-wise)`` test metrics (training writes ``metrics.test.image``
        and ``.patient``; older cards may hold flat image metrics); empty dicts when none."""
        m = self.metrics if isinstance(self.metrics, dict) else {}
        test = m.get("test")
        if isinstance(test, dict):
            image, patient = test.get("image"), test.get("patient")
            return (dict(image) if isinstance(image, dict) else {}), (
                dict(patient) if isinstance(patient, dict) else {}
            )
        flat = {k: v for k, v in m.items() if not isinstance(v, dict)}
        patient = m.get("patient")
        return flat, (dict(patient) if isinstance(patient, dict) else {})

    def test_metric(self, key: str, level: str = "image") -> float | None:
        """One recorded test metric (``level`` "image" or "patient"), or None."""
        image, patient = self.test_metrics()
        value = (patient if level == "patient" else image).get(key)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    def class_index(self, label: str | int) -> int:
        """Index of a class given by name or index; ValueError if unknown."""
        if isinstance(label, int) and not isinstance(label, bool):
            if 0 <= label < self.num_classes:
                return label
            raise ValueError(f"class index {label} out of range for classes {self.classes}")
        if label in self.classes:
            return self.classes.index(label)
        raise ValueError(f"unknown class {label!r}; this model's classes are {self.classes}")

    def with_updates(self, **changes: Any) -> ModelCard:
        """A validated copy with some fields changed."""
        return replace(self, **changes)

    # -- validation ------------------------------------------------------------------
    def validate(self, require_registered: bool = True) -> None:
        """Raise :class:`ModelCardError` describing the first invalid field.

        ``require_registered`` additionally requires ``version >= 1`` and a sha256.
        """
        where = f"model card {self.name!r}" if isinstance(self.name, str) else "model card"

        def bad(field_name: str, problem: str) -> ModelCardError:
            return ModelCardError(f"{where}: field '{field_name}' {problem}")

        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise bad(
                "name",
                "must be 1-100 characters of letters, digits, '_', '.', '-' "
                f"starting with a letter or digit (got {self.name!r})",
            )
        if not isinstance(self.version, int) or isinstance(self.version, bool) or self.version < 0:
            raise bad("version", f"must be a non-negative integer (got {self.version!r})")
        if require_registered and self.version < 1:
            raise bad("version", f"must be >= 1 for a registered model (got {self.version})")
        if self.architecture not in ARCHITECTURES:
            raise bad("architecture", f"must be one of {list(ARCHITECTURES)} (got {self.architecture!r})")
        if self.input_mode not in INPUT_CHANNELS:
            raise bad("input_mode", f"must be one of {list(INPUT_CHANNELS)} (got {self.input_mode!r})")
        if (
            not isinstance(self.input_size, int)
            or isinstance(self.input_size, bool)
            or not 32 <= self.input_size <= 4096
        ):
            raise bad("input_size", f"must be an integer between 32 and 4096 (got {self.input_size!r})")
        norm = self.normalisation
        channels = INPUT_CHANNELS[self.input_mode]
        if not isinstance(norm, dict) or set(norm) != {"mean", "std"}:
            raise bad("normalisation", f"must be an object with exactly 'mean' and 'std' (got {norm!r})")
        for key in ("mean", "std"):
            vals = norm[key]
            if (
                not isinstance(vals, list)
                or len(vals) != channels
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in vals)
            ):
                raise bad(
                    "normalisation",
                    f"'{key}' must be a list of {channels} finite numbers "
                    f"for input_mode {self.input_mode!r} (got {vals!r})",
                )
        if any(v <= 0 for v in norm["std"]):
            raise bad("normalisation", f"'std' values must be > 0 (got {norm['std']!r})")
        if (
            not isinstance(self.classes, list)
            or len(self.classes) < 2
            or not all(isinstance(c, str) and c for c in self.classes)
            or len(set(self.classes)) != len(self.classes)
        ):
            raise bad("classes", f"must be a list of at least 2 distinct non-empty names (got {self.classes!r})")
        for key in ("training", "metrics"):
            if not isinstance(getattr(self, key), dict):
                raise bad(key, f"must be an object (got {type(getattr(self, key)).__name__})")
        if not isinstance(self.created, str):
            raise bad("created", f"must be an ISO 8601 time string (got {self.created!r})")
        try:
            datetime.fromisoformat(self.created)
        except ValueError:
            raise bad("created", f"must be an ISO 8601 time string (got {self.created!r})") from None
        if not isinstance(self.sha256, str) or (self.sha256 and not _SHA_RE.match(self.sha256)):
            raise bad("sha256", f"must be 64 lower-case hex digits (got {self.sha256!r})")
        if require_registered and not self.sha256:
            raise bad("sha256", "is missing (the card does not identify a weights file)")
        if self.parent is not None and (not isinstance(self.parent, str) or not _PARENT_RE.match(self.parent)):
            raise bad("parent", f"must be null or 'name:version' (got {self.parent!r})")
        if self.variant not in VARIANTS:
            raise bad("variant", f"must be one of {list(VARIANTS)} (got {self.variant!r})")
        if self.pretrained_init not in ("imagenet", "random"):
            raise bad("pretrained_init", f"must be 'imagenet' or 'random' (got {self.pretrained_init!r})")
        if not isinstance(self.description, str):
            raise bad("description", "must be a string")
        if self.calibration is not None:
            t = self.calibration.get("temperature") if isinstance(self.calibration, dict) else None
            if not isinstance(t, (int, float)) or isinstance(t, bool) or not math.isfinite(t) or t <= 0:
                raise bad(
                    "calibration",
                    f"must be null or an object with a finite 'temperature' > 0 (got {self.calibration!r})",
                )
        if self.shipping is not None and not isinstance(self.shipping, dict):
            raise bad("shipping", f"must be null or an object (got {type(self.shipping).__name__})")
        if self.integrity is not None and (not isinstance(self.integrity, str) or not _SHA_RE.match(self.integrity)):
            raise bad("integrity", f"must be null or 64 lower-case hex digits (got {self.integrity!r})")
        if self.operating_points is not None:
            ops = self.operating_points
            if (
                not isinstance(ops, dict)
                or set(ops) != set(OPERATING_POINTS)
                or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and 0 <= v <= 1
                    for v in ops.values()
                )
            ):
                raise bad(
                    "operating_points",
                    f"must be null or an object with exactly {list(OPERATING_POINTS)} "
                    f"mapped to thresholds in [0, 1] (got {ops!r})",
                )

    # -- (de)serialisation -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (with a ``format`` marker)."""
        data = asdict(self)
        for key in ("calibration", "operating_points", "shipping", "feature_guard", "integrity"):  # absent, not null
            if data[key] is None:
                del data[key]
        return {"format": CARD_FORMAT, **data}

    def to_json(self, indent: int | None = 2) -> str:
        """Serialise to JSON text (validated first; JSON-incompatible values raise)."""
        self.validate(require_registered=False)
        try:
            return json.dumps(self.to_dict(), indent=indent, sort_keys=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ModelCardError(f"model card {self.name!r} cannot be written as JSON: {exc}") from exc

    @classmethod
    def from_dict(cls, data: Any, require_registered: bool = True) -> ModelCard:
        """Build and validate a card from a dict (unknown keys are rejected)."""
        if not isinstance(data, dict):
            raise ModelCardError(f"model card must be a JSON object (got {type(data).__name__})")
        data = dict(data)
        fmt = data.pop("format", CARD_FORMAT)
        if fmt != CARD_FORMAT:
            raise ModelCardError(f"unsupported model card format {fmt!r} (this version reads {CARD_FORMAT})")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelCardError(f"model card has unknown field(s): {', '.join(unknown)}")
        required = (
            "name",
            "version",
            "architecture",
            "input_mode",
            "input_size",
            "normalisation",
            "classes",
            "created",
            "sha256",
        )
        missing = [k for k in required if k not in data]
        if missing:
            raise ModelCardError(f"model card {data.get('name', '?')!r} is missing field(s): {', '.join(missing)}")
        if data.get("normalisation") is None:
            raise ModelCardError(f"model card {data.get('name', '?')!r}: field 'normalisation' must not be null")
        try:
            card = cls(**data)
        except TypeError as exc:
            raise ModelCardError(f"model card {data.get('name', '?')!r} has an invalid field: {exc}") from exc
        card.validate(require_registered=require_registered)
        return card

    @classmethod
    def from_json(cls, text: str | bytes, require_registered: bool = True) -> ModelCard:
        """Parse JSON text into a validated card; :class:`ModelCardError` on any problem."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelCardError(f"model card is not valid JSON: {exc}") from exc
        return cls.from_dict(data, require_registered=require_registered)

    @classmethod
    def read(cls, path: str | Path, require_registered: bool = True) -> ModelCard:
        """Read a card file; errors name the file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ModelCardError(f"{path}: cannot read model card ({exc.strerror or exc})") from exc
        except UnicodeDecodeError as exc:
            raise ModelCardError(f"{path}: model card is not UTF-8 text") from exc
        try:
            return cls.from_json(text, require_registered=require_registered)
        except ModelCardError as exc:
            raise ModelCardError(f"{path}: {exc}") from exc
