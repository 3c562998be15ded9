"""Self-supervised pre-training on unlabelled slides and images (paper App. B.2).

Two modes:

* ``modular``: DINO (Caron et al. 2021) for the scorer, on images downscaled s times as the scorer
  sees them, and for the local ViT, on high-resolution regions; ``part`` picks either or both.
* ``unbiased``: the paper's end-to-end pretext. Two views that differ in pixel values only; the student
  ScoreNet encodes the top-K regions its scorer picks (perturbed top-K, so the scorer learns), the
  teacher all regions; the representation is the global encoder's last two [CLS] states.

Every epoch ends with ``pretrained.safetensors`` (the teacher's weights of the pre-trained parts, for
``scorenet train --init``), ``pretrain_state.pt`` (everything a resume needs, weights_only-loadable)
and the log; all writes are atomic. A collapsed teacher stops the run with a message.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from .atomic import atomic_write
from .augment import MultiCrop, PixelViews
from .choices import PRETRAIN
from .config import MODEL_CONFIGS, ScoreNetConfig
from .dino import (
    DINOHead,
    cosine_schedule,
    detect_collapse,
    dino_loss,
    ema_update,
    entropy_stats,
    teacher_probabilities,
    teacher_temperature,
    updated_center,
)
from .errors import ScoreNetInputError
from .jobs import Cancelled, Job, Progress, ProgressFn, StopFn, check_stop, run_job
from .model import ScoreNet, build_model
from .recipes import RECIPES, SIGMA_SCHEDULES
from .regions import downscale, gather_regions
from .tissue import TissueParams
from .train import (
    _autocast_dtype,
    _device,
    _init_distributed,
    load_training_state,
    save_training_state,
    sigma_at,
    write_logs,
)
from .unlabelled import TissueCrops, find_sources

log = logging.getLogger(__name__)

PRETRAIN_MODES = ("modular", "unbiased")
PRETRAIN_PARTS = ("scorer", "local", "both")
WEIGHTS, STATE, CONFIG_JSON = "pretrained.safetensors", "pretrain_state.pt", "pretrain_config.json"
# (source side, global view, local view) in pixels: the scorer's views are s-times downscaled images
# (a source of 120 is 960 high-resolution pixels, so 1000-pixel tiles can serve), the local ViT's are
# high-resolution regions (its global view is one region, P_h = 128)
SCORER_VIEWS = (120, 96, 48)
LOCAL_VIEWS = (192, 128, 64)


@dataclass
class PretrainConfig:
    """Everything that defines a pre-training run. ``lr=None`` means 5e-4 * batch / 256 (DINO)."""

    sources: list[str]
    out: str | os.PathLike[str]
    mode: str = PRETRAIN.mode
    part: str = PRETRAIN.part  # modular only: "scorer", "local" or "both"
    model: str = PRETRAIN.model
    overrides: dict[str, Any] = field(default_factory=dict)
    # unbiased mode: the scorer starts untrained, so its selection explores as in the scratch training
    # recipe (min-max scores, sigma 0.5 decayed linearly); ``overrides`` may set other values
    selection: dict[str, Any] = field(default_factory=lambda: dict(RECIPES["scratch"]["overrides"]))
    sigma_schedule: str = RECIPES["scratch"]["sigma_schedule"]
    epochs: int = PRETRAIN.epochs
    samples_per_epoch: int = PRETRAIN.samples_per_epoch
    batch_size: int = PRETRAIN.batch_size
    lr: float | None = None
    min_lr: float = 1e-6
    warmup: float = 0.1  # share of the epochs of linear learning-rate warm-up (DINO: 10 of 100)
    weight_decay: float = 0.04
    weight_decay_end: float = 0.4
    momentum_teacher: float = PRETRAIN.momentum_teacher  # -> 1 on a cosine
    teacher_temp: float = PRETRAIN.teacher_temp
    warmup_teacher_temp: float = PRETRAIN.warmup_teacher_temp
    teacher_temp_warmup: float = 0.3  # share of the epochs of teacher-temperature warm-up (DINO: 30 of 100)
    student_temp: float = 0.1
    center_momentum: float = 0.9
    out_dim: int = 1024
    hidden_dim: int = 1024
    bottleneck_dim: int = 128
    local_crops: int = PRETRAIN.local_crops
    clip_grad: float = 3.0
    freeze_last_layer_epochs: int = 1
    image_size: tuple[int, int] = PRETRAIN.image_size  # unbiased mode: the ScoreNet input (height, width)
    mpp: float | None = None  # resolution of the high-resolution pixels; None: each source's own
    tissue: dict[str, Any] = field(default_factory=dict)  # TissueParams fields
    min_tissue: float = PRETRAIN.min_tissue
    seed: int = PRETRAIN.seed
    device: str = PRETRAIN.device
    amp: bool = True
    num_workers: int = PRETRAIN.num_workers
    resume: bool = False
    init: str | os.PathLike[str] | None = None  # start from these weights (e.g. a modular run's)

    @property
    def base_lr(self) -> float:
        return self.lr if self.lr is not None else 5e-4 * self.batch_size / 256

    @property
    def branches(self) -> tuple[str, ...]:
        """The DINO branches trained: ``scorer``, ``local_vit`` or the ``unbiased`` ScoreNet."""
        if self.mode == "unbiased":
            return ("unbiased",)
        return {"scorer": ("scorer",), "local": ("local_vit",), "both": ("scorer", "local_vit")}[self.part]

    @property
    def parts(self) -> list[str]:
        """The parts of ScoreNet the run pre-trains (as ``scorenet.pretrained.PARTS`` names them)."""
        if self.mode == "unbiased":
            return ["scorer", "local_vit", "global_encoder"]
        return list(self.branches)

    @property
    def model_overrides(self) -> dict[str, Any]:
        """ScoreNet config fields of the run: the selection's (unbiased mode), then ``overrides``."""
        return {**(self.selection if self.mode == "unbiased" else {}), **self.overrides}

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(
            out=str(self.out),
            init=None if self.init is None else str(self.init),
            base_lr=self.base_lr,
            image_size=list(self.image_size),
            parts=self.parts,
        )
        return d

    def check(self) -> None:
        """Raise ``ScoreNetInputError`` for options that cannot work."""
        problems = [
            (
                self.mode in PRETRAIN_MODES,
                f"unknown mode {self.mode!r}; choose one of {', '.join(PRETRAIN_MODES)}",
            ),
            (
                self.part in PRETRAIN_PARTS,
                f"unknown part {self.part!r}; choose one of {', '.join(PRETRAIN_PARTS)}",
            ),
            (
                self.model in MODEL_CONFIGS,
                f"unknown model {self.model!r}; choose one of {', '.join(MODEL_CONFIGS)}",
            ),
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (
                self.samples_per_epoch >= self.batch_size >= 2,
                "need batch size >= 2 and samples per epoch >= it",
            ),
            (self.base_lr > 0, f"learning rate must be > 0, got {self.base_lr}"),
            (
                0 <= self.warmup < 1 and 0 <= self.teacher_temp_warmup <= 1,
                "warm-up shares must lie in [0, 1)",
            ),
            (0 <= self.momentum_teacher <= 1, "teacher momentum must lie in [0, 1]"),
            (
                min(self.teacher_temp, self.warmup_teacher_temp, self.student_temp) > 0,
                "temperatures must be > 0",
            ),
            (self.local_crops >= 0, "local crops must be >= 0"),
            (self.mpp is None or self.mpp > 0, f"mpp must be > 0, got {self.mpp}"),
            (0 <= self.min_tissue <= 1, "min tissue must lie in [0, 1]"),
            (self.sigma_schedule in SIGMA_SCHEDULES, f"sigma schedule must be one of {SIGMA_SCHEDULES}"),
            (not self.sources == [], "give at least one slide, image or folder to pre-train on"),
        ]
        for ok, message in problems:
            if not ok:
                raise ScoreNetInputError(message)
        try:
            TissueParams(**self.tissue)
            model_config = ScoreNetConfig(**{**MODEL_CONFIGS[self.model], **self.model_overrides})
        except (TypeError, ValueError) as err:
            raise ScoreNetInputError(f"bad option ({err})") from err
        find_sources(self.sources)  # a missing or empty source fails here, before a model is built
        if self.init is not None:
            from .pretrained import check_init

            check_init(self.init, model_config)


@dataclass
class PretrainResult:
    """Where the run's files are and how it ended; ``model`` is the pre-trained (teacher) ScoreNet."""

    weights: Path
    history: list[dict[str, Any]]
    stopped: bool
    collapsed: str | None
    out: Path
    model: ScoreNet


class _Views(Dataset):
    """Augmented views of tissue crops; the scorer's crops are shrunk s times as ScoreNet shrinks them."""

    def __init__(
        self, crops: TissueCrops, views: Callable[[torch.Tensor], list[torch.Tensor]], shrink: int = 1
    ):
        self.crops, self.views, self.shrink = crops, views, shrink

    def __len__(self) -> int:
        return len(self.crops)

    def set_epoch(self, epoch: int) -> None:
        self.crops.set_epoch(epoch)

    def __getitem__(self, index: int) -> list[torch.Tensor]:
        image = self.crops[index]
        if self.shrink > 1:
            image = downscale(image[None], self.shrink)[0].mul_(255).round_().to(torch.uint8)
        return self.views(image)


class _Zip(Dataset):
    """One item of each branch's dataset per index."""

    def __init__(self, datasets: dict[str, _Views]):
        self.datasets = datasets

    def __len__(self) -> int:
        return min(len(d) for d in self.datasets.values())

    def set_epoch(self, epoch: int) -> None:
        for d in self.datasets.values():
            d.set_epoch(epoch)

    def __getitem__(self, index: int) -> dict[str, list[torch.Tensor]]:
        return {name: d[index] for name, d in self.datasets.items()}


def _datasets(config: PretrainConfig, model_config: ScoreNetConfig) -> _Zip:
    sources = find_sources(config.sources)
    tissue = TissueParams(**config.tissue)
    s = model_config.downscale

    masks: dict = {}  # tissue masks computed once for all branches

    def crops(side: tuple[int, int], mpp: float | None, seed_offset: int) -> TissueCrops:
        dataset = TissueCrops(
            sources,
            size=side,
            mpp=mpp,
            samples_per_epoch=config.samples_per_epoch,
            seed=config.seed + seed_offset,
            tissue=tissue,
            min_tissue=config.min_tissue,
            masks=masks or None,
        )
        masks.update(dataset.masks)
        return dataset

    datasets: dict[str, _Views] = {}
    for name in config.branches:
        if name == "scorer":
            side, global_size, local_size = SCORER_VIEWS
            views = MultiCrop(global_size, local_size, config.local_crops)
            if config.mpp is not None:  # read straight at the scorer's resolution
                datasets[name] = _Views(crops((side, side), config.mpp * s, 0), views)
            else:
                datasets[name] = _Views(crops((side * s, side * s), None, 0), views, shrink=s)
        elif name == "local_vit":
            side, global_size, local_size = LOCAL_VIEWS
            datasets[name] = _Views(
                crops((side, side), config.mpp, 1), MultiCrop(global_size, local_size, config.local_crops)
            )
        else:
            datasets[name] = _Views(crops(tuple(config.image_size), config.mpp, 2), PixelViews())
    return _Zip(datasets)


def _collate(items: list[dict[str, list[torch.Tensor]]]) -> dict[str, list[torch.Tensor]]:
    """Per branch, one (B, 3, h, w) batch per view."""
    return {
        name: [torch.stack(v) for v in zip(*(item[name] for item in items), strict=True)] for name in items[0]
    }


def _all_regions(model: ScoreNet, images: torch.Tensor) -> torch.Tensor:
    fitted, grid = model.fit_images(images)
    n = grid[0] * grid[1]
    indices = torch.arange(n, device=images.device).expand(images.shape[0], n)
    return gather_regions(fitted, indices, grid, model.config.region_size)


def _selected_regions(model: ScoreNet, images: torch.Tensor) -> torch.Tensor:
    fitted, grid = model.fit_images(images)
    _, distribution = model.score(fitted)
    return model.select_regions(fitted, distribution, grid)


def encode(model: ScoreNet, branch: str, views: torch.Tensor, teacher: bool = False) -> torch.Tensor:
    """The representation a branch pre-trains, for a batch of uint8 views (B, 3, h, w).

    ``scorer`` / ``local_vit``: the ViT's last [CLS] state. ``unbiased``: the global encoder's last two
    [CLS] states over the student's selected regions, or over all regions for the teacher.
    """
    if branch == "scorer":
        return model.scorer(model.normalize(views))[:, -1]
    if branch == "local_vit":
        return model.local_vit(model.normalize(views))[:, -1]
    regions = _all_regions(model, views) if teacher else _selected_regions(model, views)
    return model.encode_regions(regions)[:, -2:].flatten(1)


def _encode_views(
    model: ScoreNet, branch: str, views: list[torch.Tensor], teacher: bool
) -> list[torch.Tensor]:
    """Views of one size share a forward pass (DINO's multi-crop batching)."""
    out: list[torch.Tensor | None] = [None] * len(views)
    sizes: dict[tuple[int, int], list[int]] = {}
    for i, v in enumerate(views):
        sizes.setdefault(tuple(v.shape[-2:]), []).append(i)
    for indices in sizes.values():
        features = encode(model, branch, torch.cat([views[i] for i in indices]), teacher=teacher)
        for i, chunk in zip(indices, features.chunk(len(indices)), strict=True):
            out[i] = chunk
    return out  # type: ignore[return-value]


class _Student(nn.Module):
    """The student ScoreNet with one projection head per branch (one module for DDP)."""

    def __init__(self, model: ScoreNet, heads: nn.ModuleDict):
        super().__init__()
        self.model, self.heads = model, heads

    def forward(
        self, batch: dict[str, list[torch.Tensor]], teacher: bool = False
    ) -> dict[str, list[torch.Tensor]]:
        return {
            name: [self.heads[name](f) for f in _encode_views(self.model, name, views, teacher)]
            for name, views in batch.items()
        }


def _feature_dim(model: ScoreNet, branch: str) -> int:
    """Width of :func:`encode`'s output (the global encoder may have a single [CLS] state)."""
    states = min(2, model.global_encoder.num_cls_states) if branch == "unbiased" else 1
    return model.config.embed_dim * states


def _param_groups(module: nn.Module) -> list[dict[str, Any]]:
    """DINO's groups: weight decay on weight matrices only, not on biases and norms."""
    decay = [p for p in module.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in module.parameters() if p.requires_grad and p.ndim <= 1]
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


def _clip_per_parameter(module: nn.Module, max_norm: float) -> None:
    """DINO clips each parameter's gradient norm on its own."""
    for p in module.parameters():
        if p.grad is not None:
            norm = p.grad.norm()
            if norm > max_norm:
                p.grad.mul_(max_norm / (norm + 1e-6))


def _branch_rows(row: dict[str, Any], branch: str) -> dict[str, Any]:
    return {k.removeprefix(f"{branch}_"): v for k, v in row.items() if k.startswith(f"{branch}_")}


def pretrain(
    config: PretrainConfig, *, progress: ProgressFn | None = None, should_stop: StopFn | None = None
) -> PretrainResult:
    """Pre-train ScoreNet's parts on ``config.sources``: :func:`iter_pretrain` run to its end."""
    return run_job(iter_pretrain(config, should_stop=should_stop), progress)


def iter_pretrain(config: PretrainConfig, *, should_stop: StopFn | None = None) -> Job[PretrainResult]:
    """Pre-train ScoreNet's parts, yielding a ``Progress`` per step; see the module docstring for the files.

    Events count steps over the whole run; ``info`` holds ``epoch``, ``epochs``, ``step``, ``steps``,
    ``loss``, ``lr`` and, at an epoch's end (``epoch_end``), the epoch's row (mean loss, teacher
    entropies per branch). ``should_stop()`` is asked between steps; a stop keeps the last finished
    epoch and returns ``stopped=True``.
    """
    from .pretrained import save_pretrained

    config.check()
    out = Path(config.out)
    device = _device(config)
    world = _init_distributed(device)
    torch.manual_seed(config.seed)  # the same initial student and teacher in every process
    model = build_model(config.model, 1, **config.model_overrides).to(device)
    cfg = model.config
    if config.init is not None:
        from .pretrained import load_init

        log.info("%s", load_init(model, config.init).summary())
    heads = nn.ModuleDict(
        {
            b: DINOHead(_feature_dim(model, b), config.out_dim, config.hidden_dim, config.bottleneck_dim)
            for b in config.branches
        }
    ).to(device)
    student = _Student(model, heads)
    # only the parts a branch trains get gradients (the others stay as built, and are not saved)
    used = {
        "scorer": ("scorer.",),
        "local_vit": ("local_vit.",),
        "unbiased": ("scorer.", "head_weights", "local_vit.", "global_encoder."),
    }
    prefixes = tuple(p for b in config.branches for p in used[b])
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(prefixes))
    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        p.requires_grad_(False)
    torch.manual_seed(config.seed + world.rank)  # each process its own augmentations
    # a branch leaves some layers unused (e.g. the scorer's in the unbiased mode)
    net = DistributedDataParallel(student, find_unused_parameters=True) if world.world_size > 1 else student
    optimizer = torch.optim.AdamW(_param_groups(student), lr=config.base_lr * world.world_size)

    data = _datasets(config, cfg)
    sampler = (
        DistributedSampler(data, world.world_size, world.rank, shuffle=False)
        if world.world_size > 1
        else None
    )
    loader = DataLoader(data, batch_size=config.batch_size, sampler=sampler, num_workers=config.num_workers,
                        collate_fn=_collate, drop_last=True)  # fmt: skip
    steps = len(loader)
    total = config.epochs * steps
    lr_schedule = cosine_schedule(
        config.base_lr * world.world_size, config.min_lr, total, round(config.warmup * config.epochs * steps)
    )
    wd_schedule = cosine_schedule(config.weight_decay, config.weight_decay_end, total)
    momentum_schedule = cosine_schedule(config.momentum_teacher, 1.0, total)
    centers = {b: torch.zeros(1, config.out_dim, device=device) for b in config.branches}
    autocast_dtype = _autocast_dtype(config, device)

    start_epoch, history = 0, []
    state_path = out / STATE
    if config.resume and state_path.is_file():
        state = load_training_state(state_path)
        _check_resume(state, config, state_path)
        student.load_state_dict(state["student"])
        teacher.load_state_dict(state["teacher"])
        optimizer.load_state_dict(state["optimizer"])
        centers = {b: state["centers"][b].to(device) for b in config.branches}
        torch.set_rng_state(state["rng"])
        start_epoch, history = int(state["epoch"]), json.loads(state["history"])
        log.info("resuming %s after epoch %d", out, start_epoch)
    elif config.resume:
        log.warning("%s holds no saved pre-training to resume; starting afresh", out)
    if world.is_main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(
            out / CONFIG_JSON, json.dumps({**config.to_json(), "world_size": world.world_size}, indent=2)
        )

    stopped, collapsed = False, detect_collapse_all(history, config)
    try:
        for epoch in range(start_epoch, config.epochs if collapsed is None else start_epoch):
            data.set_epoch(epoch)
            if sampler is not None:
                sampler.set_epoch(epoch)
            net.train()
            teacher.train()
            temp = teacher_temperature(
                epoch,
                round(config.teacher_temp_warmup * config.epochs),
                config.warmup_teacher_temp,
                config.teacher_temp,
            )
            sums: dict[str, float] = {}
            started = time.perf_counter()
            count = {"epoch": epoch + 1, "epochs": config.epochs, "steps": steps}
            for step, batch in enumerate(loader, start=1):
                check_stop(should_stop, "pre-training stopped")
                it = epoch * steps + step - 1
                model.sigma = sigma_at(it, total, cfg.sigma, config.sigma_schedule)
                for i, group in enumerate(optimizer.param_groups):
                    group["lr"] = lr_schedule[it]
                    if i == 0:
                        group["weight_decay"] = wd_schedule[it]
                batch = {b: [v.to(device, non_blocking=True) for v in views] for b, views in batch.items()}
                with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                    with torch.no_grad():
                        # the teacher sees the global views only (both views in the unbiased mode)
                        t_out = teacher({b: views[:2] for b, views in batch.items()}, teacher=True)
                    s_out = net(batch)
                loss = torch.zeros((), device=device)
                for b in config.branches:
                    targets = [teacher_probabilities(t, centers[b], temp) for t in t_out[b]]
                    branch_loss = dino_loss(s_out[b], targets, config.student_temp)
                    loss = loss + branch_loss
                    stats = entropy_stats(torch.cat(targets))
                    for key, value in {"loss": float(branch_loss.detach()), **stats}.items():
                        sums[f"{b}_{key}"] = sums.get(f"{b}_{key}", 0.0) + value
                    centers[b] = updated_center(centers[b], torch.cat(t_out[b]), config.center_momentum)
                if not math.isfinite(float(loss.detach())):
                    raise FloatingPointError(f"pre-training loss is {float(loss)}; lower the learning rate")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.clip_grad:
                    _clip_per_parameter(student, config.clip_grad)
                if epoch < config.freeze_last_layer_epochs:  # DINO: the last layer waits an epoch
                    for head in student.heads.values():
                        for p in head.last_layer.parameters():
                            p.grad = None
                optimizer.step()
                ema_update(teacher, student, momentum_schedule[it])
                info = {**count, "step": step, "loss": float(loss.detach()), "lr": lr_schedule[it]}
                yield Progress("pretrain", it + 1, total, "step", info)
            row: dict[str, Any] = {
                "epoch": epoch + 1,
                "loss": sum(sums[f"{b}_loss"] for b in config.branches) / steps,
                "lr": lr_schedule[it],
                "teacher_temp": temp,
                "teacher_momentum": momentum_schedule[it],
                "seconds": time.perf_counter() - started,
            }
            if config.mode == "unbiased":
                row["sigma"] = model.sigma  # the selection's noise at the epoch's last step
            row.update({k: v / steps for k, v in sums.items()})
            history.append(row)
            collapsed = detect_collapse_all(history, config)
            if world.is_main:
                meta = {
                    "mode": config.mode,
                    "epoch": epoch + 1,
                    "mpp": config.mpp,
                    "sources": [str(s) for s in config.sources],
                }
                save_pretrained(teacher.model, out / WEIGHTS, config.parts, meta)
                write_logs(out, history)
                state = {
                    "student": student.state_dict(),
                    "teacher": teacher.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "centers": {b: c.cpu() for b, c in centers.items()},
                    "rng": torch.get_rng_state(),
                    "epoch": epoch + 1,
                    "history": json.dumps(history),
                    "options": _run_options(config),
                }
                save_training_state(state_path, state)
            info = {**row, **count, "step": steps, "epoch_end": True}
            yield Progress("pretrain", (epoch + 1) * steps, total, "step", info)
            if collapsed is not None:
                log.error("%s", collapsed)
                break
    except (Cancelled, KeyboardInterrupt):
        stopped = True
        log.warning("pre-training stopped; %s holds the last finished epoch", out / WEIGHTS)
    if world.world_size > 1:
        dist.barrier()
    return PretrainResult(out / WEIGHTS, history, stopped, collapsed, out, teacher.model.eval())


def detect_collapse_all(history: Sequence[dict[str, Any]], config: PretrainConfig) -> str | None:
    """The first branch whose teacher collapsed (see :func:`scorenet.dino.detect_collapse`)."""
    for b in config.branches:
        message = detect_collapse([_branch_rows(row, b) for row in history], config.out_dim)
        if message is not None:
            return message if len(config.branches) == 1 else f"{b}: {message}"
    return None


# options a resumed run must share with the saved one
RESUME_KEYS = ("mode", "part", "model", "overrides", "selection", "sigma_schedule", "epochs",
               "samples_per_epoch", "batch_size", "lr", "seed", "out_dim", "hidden_dim", "bottleneck_dim",
               "local_crops", "image_size", "mpp", "sources", "init")  # fmt: skip


def _run_options(config: PretrainConfig) -> str:
    d = config.to_json()
    return json.dumps({k: d[k] for k in RESUME_KEYS}, sort_keys=True)


def _check_resume(state: dict[str, Any], config: PretrainConfig, where: Path) -> None:
    saved, now = json.loads(state.get("options", "{}")), json.loads(_run_options(config))
    changed = [f"{k} {saved.get(k)!r} -> {now[k]!r}" for k in RESUME_KEYS if saved.get(k) != now[k]]
    if changed:
        raise ScoreNetInputError(
            f"resume needs the saved run's options; changed: {', '.join(changed)}", where
        )
