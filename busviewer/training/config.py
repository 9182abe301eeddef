"""Settings of a training run (one dataclass, saved as ``config.json`` in the run dir)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: ImageNet statistics (the torchvision backbones were trained with them).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class AugmentConfig:
    """Online augmentation of training images (torchvision.transforms.v2); each part toggles.

    - ``crop``: ``"resized"`` random resized crop (area ``crop_scale``, aspect 3/4..4/3),
      ``"random"`` resize to ``input_size * random_crop_pad`` then a random crop
      (seed 001), or ``"none"`` (plain resize).
    - ``hflip``: random horizontal flip (seed 001).
    - ``brightness`` / ``contrast``: colour jitter strength, 0 disables (seed 002).
    - ``scale``: small random zoom in/out by up to this fraction, 0 disables (seed 002).
    - ``rotation``: random rotation by up to this many degrees, 0 disables.
    - ``gamma``: random gamma in ``[1 - gamma, 1 + gamma]`` (ultrasound gain/TGC changes).
    - ``noise``: additive Gaussian noise of this standard deviation (images in [0, 1]).
    - ``blur``: probability of a light Gaussian blur (sigma 0.1..1.0 px).
    """

    enabled: bool = True
    crop: str = "resized"
    crop_scale: tuple[float, float] = (0.7, 1.0)
    random_crop_pad: float = 1.14
    hflip: bool = True
    brightness: float = 0.2
    contrast: float = 0.2
    scale: float = 0.1
    rotation: float = 0.0
    gamma: float = 0.0
    noise: float = 0.0
    blur: float = 0.0


@dataclass
class TrainConfig:
    """Everything a training run needs; defaults follow seeds 001/000.

    Data: ``data`` is a manifest CSV (``image,label,patient_id``; paths relative to the
    CSV's folder) or ``"store"`` (the labelled images of the local store). ``normal``:
    ``"drop"`` (default, benign-vs-malignant task) or ``"benign"`` (count normal images
    as benign). ``label_sources`` filters by label origin (``import``, ``reader``,
    ``biopsy``; ``None`` = all); ``use_rois`` trains on the saved lesion crops (store).

    Split: patient-wise, stratified by patient label (any malignant image -> malignant
    patient), fractions of patients for validation and test, seeded by ``seed``;
    ``split_file`` reuses a saved split instead. ``folds`` > 1 adds a patient-wise
    k-fold cross-validation (each fold's test part is one fold; validation patients are
    drawn from the rest) for a mean +- SD estimate; the registered model is always the
    one trained on the fixed split (``final`` phase) and evaluated on its test patients.

    Training: Adam (``lr``), cross-entropy, early stopping on validation loss after
    ``patience`` epochs without improvement (``min_delta``) with best-weights restore,
    at most ``epochs`` epochs per stage. ``balance``: ``"loss"`` (class-weighted
    cross-entropy), ``"sampler"`` (WeightedRandomSampler-style oversampling, sharded for
    DDP) or ``"none"``; with balancing the validation loss used for early stopping is
    weighted the same way (inverse training-class frequencies).

    Freezing (``None`` = automatic): with ImageNet (or ``init_from``) weights the seed-001
    schedule -- AlexNet trains its last 3 layers, ResNet-18 freezes its first 4 layers,
    VGG-16 freezes ``vgg_frozen_blocks`` conv blocks (0); with random initialisation
    (weights unavailable, ``pretrained=False``) every layer is trained, since frozen random
    filters would carry nothing. ``head_init``: the ensemble's joint head starts as the
    average of the two stage-1 branch heads (``"branches"``: its first output equals the
    mean of the branch logits, so stage 2 starts from the branches' combined decision) or
    from PyTorch's random initialisation (``"random"``).

    Recipe (see :mod:`busviewer.training.recipes`; ``recipe`` records which preset the
    settings came from; the dataclass defaults are the ``seed`` recipe): ``variant``
    (network variant, :data:`busviewer.ai.architectures.VARIANTS`), ``optimizer`` (``adam`` or
    ``adamw``; AdamW decays only weights with >= 2 dimensions), ``schedule`` (``constant``
    or ``cosine``: linear warm-up over ``warmup_epochs`` then cosine decay to 0 over
    ``epochs``, per step), ``early_stop`` (``val_loss`` or ``val_auc``: validation AUC over
    patients, a patient scored by the mean malignant probability of their images; ties broken
    by the loss), ``label_smoothing``, ``mixup`` (Beta(alpha, alpha); 0 off), ``ema``
    (decay of an exponential moving average of the weights, evaluated and kept instead of
    the raw weights; 0 off), ``ensemble_schedule`` (``staged``: seed 001's branch stages
    then the joint head; ``joint``: one stage trains both branches and the 4608-d head
    together, the loss being the head's cross-entropy plus ``aux_weight`` times each
    branch head's).

    Device: ``device`` ``None`` = automatic (cuda, mps, cpu). ``amp``: ``"auto"`` (bf16
    where supported, else fp16, CUDA only), ``"fp16"``, ``"bf16"`` or ``"off"``; it is
    always off off CUDA.
    """

    architecture: str = "ensemble"
    data: str = ""
    input_mode: str = "bmode"
    input_size: int = 224
    # data
    normal: str = "drop"
    label_sources: list[str] | None = None
    use_rois: bool = False
    limit_patients: int | None = None
    cache_images: bool = True
    # split
    seed: int = 0
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    folds: int = 0
    split_file: str | None = None
    # optimisation
    epochs: int = 30
    patience: int = 5
    min_delta: float = 0.0
    batch_size: int = 32
    eval_batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 0.0
    balance: str = "loss"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    threshold: float = 0.5
    max_steps_per_epoch: int | None = None  # for smoke tests
    # model
    pretrained: bool = True
    init_from: str | None = None  # "name:version" of a registered model to fine-tune
    alexnet_trainable_last: int | None = None
    resnet_frozen_first: int | None = None
    vgg_frozen_blocks: int | None = None
    head_init: str = "branches"  # ensemble stage 2: "branches" (average of the stage-1 heads) or "random"
    # recipe levers (dataclass defaults = the "seed" recipe)
    recipe: str = "seed"
    variant: str = "classic"
    optimizer: str = "adam"
    schedule: str = "constant"
    warmup_epochs: int = 0
    early_stop: str = "val_loss"
    label_smoothing: float = 0.0
    mixup: float = 0.0
    ema: float = 0.0
    ensemble_schedule: str = "staged"
    aux_weight: float = 0.5
    # machinery
    device: str | None = None
    amp: str = "auto"
    num_workers: int = 0
    distributed: bool | None = None  # None: DDP when WORLD_SIZE > 1
    checkpoints: bool = True  # False: no per-epoch checkpoints (throwaway runs; not resumable)
    keep_checkpoints: bool = False
    keep_phase_weights: bool = False  # True: every phase (CV folds too) keeps its model.safetensors
    # result
    name: str | None = None
    description: str = ""
    register: bool = True
    run_dir: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.augment, dict):
            aug = dict(self.augment)
            if "crop_scale" in aug:
                aug["crop_scale"] = tuple(aug["crop_scale"])
            self.augment = AugmentConfig(**aug)
        self.mean = tuple(self.mean)  # type: ignore[assignment]
        self.std = tuple(self.std)  # type: ignore[assignment]
        self.validate()

    @property
    def model_name(self) -> str:
        return self.name or self.architecture

    def validate(self) -> None:
        from busviewer.ai.architectures import ARCHITECTURES, INPUT_CHANNELS, VARIANTS

        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.architecture!r}; expected one of {ARCHITECTURES}")
        if self.input_mode not in INPUT_CHANNELS:
            raise ValueError(f"unknown input mode {self.input_mode!r}")
        if self.input_mode != "bmode":
            raise ValueError("training supports input_mode 'bmode' only (no paired elastography data source yet)")
        if self.normal not in ("drop", "benign"):
            raise ValueError("normal must be 'drop' or 'benign'")
        if self.balance not in ("none", "loss", "sampler"):
            raise ValueError("balance must be 'none', 'loss' or 'sampler'")
        if self.amp not in ("auto", "off", "fp16", "bf16"):
            raise ValueError("amp must be 'auto', 'off', 'fp16' or 'bf16'")
        if self.head_init not in ("branches", "random"):
            raise ValueError("head_init must be 'branches' or 'random'")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}")
        if self.optimizer not in ("adam", "adamw"):
            raise ValueError("optimizer must be 'adam' or 'adamw'")
        if self.schedule not in ("constant", "cosine"):
            raise ValueError("schedule must be 'constant' or 'cosine'")
        if self.early_stop not in ("val_loss", "val_auc"):
            raise ValueError("early_stop must be 'val_loss' or 'val_auc'")
        if self.ensemble_schedule not in ("staged", "joint"):
            raise ValueError("ensemble_schedule must be 'staged' or 'joint'")
        if not 0 <= self.label_smoothing < 1 or not 0 <= self.ema < 1 or self.mixup < 0 or self.warmup_epochs < 0:
            raise ValueError("label_smoothing and ema must be in [0, 1); mixup and warmup_epochs >= 0")
        if self.augment.crop not in ("resized", "random", "none"):
            raise ValueError("augment.crop must be 'resized', 'random' or 'none'")
        if not 0 <= self.val_fraction < 1 or not 0 <= self.test_fraction < 1:
            raise ValueError("val_fraction and test_fraction must be in [0, 1)")
        if self.val_fraction <= 0:
            raise ValueError("val_fraction must be > 0 (early stopping needs validation patients)")
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction + test_fraction must leave training patients")
        if self.folds == 1 or self.folds < 0:
            raise ValueError("folds must be 0 (no cross-validation) or >= 2")
        if self.epochs < 1 or self.patience < 1 or self.batch_size < 1 or self.input_size < 32:
            raise ValueError("epochs, patience, batch_size must be >= 1 and input_size >= 32")
        if self.architecture == "ensemble" and self.input_size < 64:
            raise ValueError("the ensemble needs input_size >= 64 (AlexNet's pooling)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
