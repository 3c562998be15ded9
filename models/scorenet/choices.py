"""The names users choose from and the defaults they start with, for the CLI and the widgets alike.

No torch import: ``scorenet --help`` and the widgets' forms read this module without loading a model.
Enum members are ``str``s equal to the names the library takes (``TrainConfig(mix="scoremix")``), so
either form works wherever a name is expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Choice(str, Enum):
    """A ``str`` enum (Python 3.10 has no ``StrEnum``) that prints as its value."""

    def __str__(self) -> str:
        return self.value


class Model(Choice):
    """ScoreNet variants (``scorenet.config.MODEL_CONFIGS``): ScoreNet/4/y, y global [CLS] states."""

    SCORENET_4_1 = "scorenet_4_1"
    SCORENET_4_3 = "scorenet_4_3"


class Mix(Choice):
    """Mixing augmentations (``scorenet.mixing.MIX_METHODS``), in the one order every list uses."""

    NONE = "none"
    CUTMIX = "cutmix"
    SALIENCYMIX = "saliencymix"
    SCOREMIX = "scoremix"

    @property
    def label(self) -> str:
        """The method's name as its paper writes it (what the ScoreMix preview lists)."""
        return _MIX_LABELS[self]


_MIX_LABELS = {
    Mix.NONE: "none",
    Mix.CUTMIX: "CutMix",
    Mix.SALIENCYMIX: "SaliencyMix",
    Mix.SCOREMIX: "ScoreMix",
}


class Device(Choice):
    """Devices by name (``scorenet.inference.resolve_device`` also takes ``cuda:N``, and checks them)."""

    AUTO = "auto"  # CUDA, else Apple MPS, else CPU
    CPU = "cpu"
    CUDA = "cuda"
    MPS = "mps"


class RoiSource(Choice):
    """Where the Score RoI widget takes its regions from; the values are what the widget shows."""

    SHAPES = "Shapes rectangles"
    VIEW = "Current view"
    WHOLE_SLIDE = "Whole slide (thumbnail)"
    WHOLE_SLIDE_TILES = "Whole slide (tissue tiles)"  # a heat map of RoIs over the tissue


def values(choices: type[Choice]) -> tuple[str, ...]:
    """The members' plain string values, in definition order (for combo boxes and ``choices=``)."""
    return tuple(member.value for member in choices)


DEVICE_HELP = f"{', '.join(values(Device))}, or cuda:N for one of several GPUs"
DEFAULT_RECIPE = "scratch"  # of `scorenet train` and the Finetune widget: they start from random weights


@dataclass(frozen=True)
class TrainDefaults:
    """Defaults of the finetuning options; ``scorenet.train.TrainConfig`` takes its own from here.

    ``paper`` is these values as they stand; other recipes (``scorenet.recipes.RECIPES``) replace some.
    One rule for mixing: none by default everywhere, the Finetune widget included (at the default
    recipe's budget no mix helped a model trained from scratch, docs/benchmarks.md).
    """

    model: str = Model.SCORENET_4_1.value
    epochs: int = 15
    batch_size: int = 8
    min_lr: float = 1e-6
    momentum: float = 0.9
    weight_decay: float = 0.0
    mix: str = Mix.NONE.value
    mix_prob: float = 1.0
    fraction: float = 1.0
    val_fraction: float = 0.2
    seed: int = 0
    device: str = Device.AUTO.value
    num_workers: int = 0
    optimizer: str = "sgd"
    scorer_lr_scale: float = 1.0
    scorer_freeze_epochs: float = 0.0
    warmup_epochs: float = 0.0
    sigma_schedule: str = "constant"


@dataclass(frozen=True)
class PretrainDefaults:
    """Defaults of the pre-training options shown by ``scorenet pretrain`` and the Pretrain widget.

    ``scorenet.pretrain.PretrainConfig``'s fields take their defaults from here.
    """

    mode: str = "modular"
    part: str = "both"
    model: str = Model.SCORENET_4_1.value
    epochs: int = 100
    samples_per_epoch: int = 1024
    batch_size: int = 16
    momentum_teacher: float = 0.996
    teacher_temp: float = 0.07
    warmup_teacher_temp: float = 0.04
    local_crops: int = 8
    image_size: tuple[int, int] = (768, 1024)
    min_tissue: float = 0.5
    seed: int = 0
    device: str = Device.AUTO.value
    num_workers: int = 0


TRAIN = TrainDefaults()
PRETRAIN = PretrainDefaults()
