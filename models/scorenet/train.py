"""Finetune ScoreNet on a labelled folder (paper App. B.1): SGD, cosine schedule, optional mixing.

One code path for a single process and for ``torchrun`` (DDP: gloo on CPU, NCCL on CUDA); only rank 0
writes. Every epoch ends with ``last.safetensors`` + ``last_state.pt`` (optimizer, scheduler, RNG
states) and, when validation weighted F1 improves, ``best.safetensors``; all writes are atomic, so an
interrupted run keeps its last good epoch and ``resume=True`` continues it to the same final weights.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from .atomic import atomic_path, atomic_write
from .checkpoint import save_checkpoint
from .choices import TRAIN
from .config import MODEL_CONFIGS, ScoreNetConfig
from .data import DataSplits, GridBatchSampler, GridImageDataset, load_splits, subsample
from .errors import CheckpointError, ScoreNetInputError
from .evaluate import classification_metrics, make_loader, predict
from .jobs import Cancelled, Job, Progress, ProgressFn, StopFn, check_stop, run_job
from .mixing import MixBatchTransform
from .mixing.transform import MIX_METHODS
from .model import ScoreNet, build_model
from .pretrained import InitReport, check_init, load_init
from .recipes import OPTIMIZERS, RECIPES, SIGMA_SCHEDULES

log = logging.getLogger(__name__)


LAST, BEST, STATE = "last.safetensors", "best.safetensors", "last_state.pt"
LOG_CSV, LOG_JSON, CONFIG_JSON = "log.csv", "log.json", "train_config.json"


@dataclass
class TrainConfig:
    """Everything that defines a finetuning run. ``lr=None`` means 1e-2 * batch_size / 256 (paper)."""

    data: str | os.PathLike[str]
    out: str | os.PathLike[str]
    # the defaults users see come from scorenet.choices.TRAIN (the CLI and the widget read them there)
    model: str = TRAIN.model
    epochs: int = TRAIN.epochs
    batch_size: int = TRAIN.batch_size
    lr: float | None = None
    min_lr: float = TRAIN.min_lr
    momentum: float = TRAIN.momentum
    weight_decay: float = TRAIN.weight_decay
    mix: str = TRAIN.mix
    mix_prob: float = TRAIN.mix_prob
    fraction: float = TRAIN.fraction  # stratified share of the training split used, in (0, 1]
    val_fraction: float = TRAIN.val_fraction  # for a plain ImageFolder without val/
    split_csv: str | os.PathLike[str] | None = None
    seed: int = TRAIN.seed
    device: str = TRAIN.device
    amp: bool = True  # bf16 (or fp16 with loss scaling) autocast on CUDA; CPU always runs float32
    num_workers: int = TRAIN.num_workers
    resume: bool = False
    mpp: float | None = None  # resolution of the training images, stored in the checkpoints
    overrides: dict[str, Any] = field(default_factory=dict)
    optimizer: str = TRAIN.optimizer  # "sgd" (momentum) or "adamw"
    scorer_lr_scale: float = TRAIN.scorer_lr_scale  # the scorer's learning rate relative to the rest
    # the scorer starts learning after these epochs (the regions' stream first)
    scorer_freeze_epochs: float = TRAIN.scorer_freeze_epochs
    warmup_epochs: float = TRAIN.warmup_epochs  # linear learning-rate warm-up before the cosine
    sigma_schedule: str = TRAIN.sigma_schedule  # perturbed top-K noise: "constant" or "linear" (decayed to 0)
    recipe: str = "paper"  # the recipe the other fields came from (see RECIPES), recorded in the run
    init: str | os.PathLike[str] | None = None  # pre-trained weights or a checkpoint; the head stays fresh

    @classmethod
    def from_recipe(cls, recipe: str, **fields: Any) -> TrainConfig:
        """A config from a named recipe (:data:`RECIPES`); ``fields`` override it, and their model
        ``overrides`` are laid over the recipe's own."""
        if recipe not in RECIPES:
            raise ScoreNetInputError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
        settings = {k: v for k, v in RECIPES[recipe].items() if k != "overrides"}
        overrides = {**RECIPES[recipe].get("overrides", {}), **fields.pop("overrides", {})}
        return cls(**{**settings, **fields, "overrides": overrides, "recipe": recipe})

    @property
    def base_lr(self) -> float:
        return self.lr if self.lr is not None else 1e-2 * self.batch_size / 256

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(data=str(self.data), out=str(self.out), base_lr=self.base_lr)
        d["split_csv"] = None if self.split_csv is None else str(self.split_csv)
        d["init"] = None if self.init is None else os.fspath(self.init)
        return d

    def check_init(self) -> InitReport | None:
        """What ``init`` will load, checked against this run's model from the file's header alone
        (None without ``init``); raises ``CheckpointError`` for a bad file."""
        if self.init is None:
            return None
        return check_init(self.init, ScoreNetConfig(**{**MODEL_CONFIGS[self.model], **self.overrides}))

    def check(self) -> None:
        """Raise ``ScoreNetInputError`` for options that cannot work."""
        problems = [
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch size must be >= 1, got {self.batch_size}"),
            (self.base_lr > 0, f"learning rate must be > 0, got {self.base_lr}"),
            (self.mix in MIX_METHODS, f"unknown mix {self.mix!r}; choose one of {', '.join(MIX_METHODS)}"),
            (0 <= self.mix_prob <= 1, f"mix probability must lie in [0, 1], got {self.mix_prob}"),
            (0 < self.fraction <= 1, f"data fraction must lie in (0, 1], got {self.fraction}"),
            (self.mpp is None or self.mpp > 0, f"mpp must be > 0, got {self.mpp}"),
            (0 <= self.val_fraction < 1, f"validation fraction must lie in [0, 1), got {self.val_fraction}"),
            (self.optimizer in OPTIMIZERS, f"unknown optimizer {self.optimizer!r}; choose from {OPTIMIZERS}"),
            (self.scorer_lr_scale > 0, f"scorer lr scale must be > 0, got {self.scorer_lr_scale}"),
            (0 <= self.warmup_epochs < self.epochs, "warm-up epochs must lie in [0, epochs)"),
            (0 <= self.scorer_freeze_epochs < self.epochs, "scorer freeze epochs must lie in [0, epochs)"),
            (self.sigma_schedule in SIGMA_SCHEDULES, f"sigma schedule must be one of {SIGMA_SCHEDULES}"),
        ]
        for ok, message in problems:
            if not ok:
                raise ScoreNetInputError(message)
        if self.model not in MODEL_CONFIGS:
            raise ScoreNetInputError(
                f"unknown model {self.model!r}; choose one of {', '.join(MODEL_CONFIGS)}"
            )
        try:
            ScoreNetConfig(**{**MODEL_CONFIGS[self.model], **self.overrides})
        except (TypeError, ValueError) as err:
            known = ", ".join(f.name for f in fields(ScoreNetConfig))
            raise ScoreNetInputError(f"bad model override {self.overrides} ({err}); fields: {known}") from err
        self.check_init()  # before any data is read: a bad file fails fast


@dataclass
class TrainResult:
    """Where the run's files are and what happened."""

    best_checkpoint: Path
    last_checkpoint: Path
    history: list[dict[str, Any]]
    stopped: bool
    class_names: list[str]
    out: Path


@dataclass
class _Dist:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _init_distributed(device: torch.device) -> _Dist:
    """Join the ``torchrun`` process group (env:// variables) when there is one."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return _Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return _Dist(dist.get_rank(), dist.get_world_size())


def _device(config: TrainConfig) -> torch.device:
    from .inference import resolve_device

    device = resolve_device(config.device)
    if device.type == "cuda" and "LOCAL_RANK" in os.environ:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    return device


def _autocast_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    if not config.amp or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def lr_factor(step: int, total_steps: int, warmup_steps: int, min_ratio: float, delay: int = 0) -> float:
    """Learning rate at ``step`` relative to the base: 0 for ``delay`` steps, then a linear warm-up
    over ``warmup_steps``, under a cosine from 1 (after the first warm-up) down to ``min_ratio``."""
    if step < delay:
        return 0.0
    warm = min(1.0, (step - delay + 1) / warmup_steps) if warmup_steps else 1.0
    progress = min(1.0, max(0, step - warmup_steps) / max(1, total_steps - warmup_steps))
    return warm * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def cosine_scheduler(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    min_lr: float,
    warmup_steps: int = 0,
    delays: Sequence[int] | None = None,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step schedule: linear warm-up, then cosine annealing to ``min_lr`` (scaled like each
    parameter group's own learning rate) at ``total_steps``; ``delays[i]`` steps of learning rate 0
    for group i before its warm-up."""
    base = max(group["lr"] for group in optimizer.param_groups)
    min_ratio = min(1.0, min_lr / base)
    delays = list(delays) if delays is not None else [0] * len(optimizer.param_groups)
    total = max(1, total_steps)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, [functools.partial(lr_factor, total_steps=total, warmup_steps=warmup_steps,
                                      min_ratio=min_ratio, delay=d) for d in delays]
    )  # fmt: skip


def sigma_at(step: int, total_steps: int, sigma: float, schedule: str) -> float:
    """The perturbed top-K noise at ``step``: constant, or decayed linearly towards 0 (Cordonnier et
    al. 2021), floored so that it stays positive."""
    if schedule == "constant":
        return sigma
    return sigma * max(1e-3, 1 - step / max(1, total_steps))


def make_optimizer(model: ScoreNet, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD with momentum or AdamW; the scorer (and its head weights) at ``scorer_lr_scale`` x the lr."""
    scorer = [p for n, p in model.named_parameters() if n.startswith(("scorer.", "head_weights"))]
    rest = [p for n, p in model.named_parameters() if not n.startswith(("scorer.", "head_weights"))]
    groups = [{"params": rest}, {"params": scorer, "lr": config.base_lr * config.scorer_lr_scale}]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.base_lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(
        groups, lr=config.base_lr, momentum=config.momentum, weight_decay=config.weight_decay
    )


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against (B, C) soft labels (mixed images carry two classes)."""
    return F.cross_entropy(logits.float(), targets)


def _rng_state(mix_generator: torch.Generator, device: torch.device) -> dict[str, torch.Tensor]:
    state = {"torch": torch.get_rng_state(), "mix": mix_generator.get_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(
    state: dict[str, torch.Tensor], mix_generator: torch.Generator, device: torch.device
) -> None:
    torch.set_rng_state(state["torch"])
    mix_generator.set_state(state["mix"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def save_training_state(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` through a temp file (tensors, numbers, strings only: loadable with weights_only)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(path, buffer.getvalue())


def load_training_state(path: Path) -> dict[str, Any]:
    """The state written by :func:`save_training_state`; never unpickles arbitrary objects."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unreadable or tampered file is a user-facing error
        raise CheckpointError(f"corrupt training state ({err.__class__.__name__}: {err})", path) from err


def write_logs(out: Path, history: list[dict[str, Any]]) -> None:
    """``log.json`` (every row) and ``log.csv`` (its flat columns), written atomically."""
    atomic_write(out / LOG_JSON, json.dumps(history, indent=2))
    flat = [{k: v for k, v in row.items() if not isinstance(v, (dict, list))} for row in history]
    fields = list(dict.fromkeys(k for row in flat for k in row))
    with atomic_path(out / LOG_CSV) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(flat)


def _loaders(
    config: TrainConfig, splits: DataSplits, model: ScoreNet, world: _Dist
) -> tuple[DataLoader, DataLoader | None]:
    cfg = model.config
    train_samples = subsample(splits.train, config.fraction, config.seed)
    dataset = GridImageDataset(train_samples, cfg.region_size, cfg.top_k, augment=True, seed=config.seed)
    sampler = GridBatchSampler(
        dataset.grids,
        config.batch_size,
        shuffle=True,
        seed=config.seed,
        rank=world.rank,
        world_size=world.world_size,
    )
    train_loader = DataLoader(dataset, batch_sampler=sampler, num_workers=config.num_workers)
    val_loader = make_loader(splits.val, model, config.batch_size, config.num_workers) if splits.val else None
    log.info("training on %d images, validating on %d", len(train_samples), len(splits.val))
    return train_loader, val_loader


# options a resumed run must share with the saved one: they fix the schedule, the batches and the model
RESUME_KEYS = ("model", "epochs", "batch_size", "lr", "min_lr", "momentum", "weight_decay", "mix", "mix_prob",
               "fraction", "val_fraction", "seed", "overrides", "optimizer", "scorer_lr_scale",
               "warmup_epochs", "sigma_schedule", "scorer_freeze_epochs", "init")  # fmt: skip


def _run_options(config: TrainConfig) -> str:
    """The resume-relevant options as a JSON string (a plain string keeps the state weights_only-safe)."""
    return json.dumps({k: getattr(config, k) for k in RESUME_KEYS}, sort_keys=True, default=os.fspath)


def _resume(out: Path, class_names: list[str], config: TrainConfig) -> dict[str, Any] | None:
    """The saved training state of ``out`` (None when there is none), checked against the data and options."""
    state_path = out / STATE
    if not state_path.is_file():
        return None
    state = load_training_state(state_path)
    if list(state.get("class_names", [])) != class_names:
        raise CheckpointError(
            f"saved classes {state.get('class_names')} differ from the data's {class_names}", state_path
        )
    saved, now = json.loads(state.get("options", "{}")), json.loads(_run_options(config))
    changed = [f"{k} {saved.get(k)!r} -> {now[k]!r}" for k in RESUME_KEYS if saved.get(k) != now[k]]
    if changed:
        raise ScoreNetInputError(f"resume needs the saved run's options; changed: {', '.join(changed)}", out)
    return state


@dataclass
class _Run:
    """The objects one training run mutates; their state is what a resume restores."""

    model: ScoreNet
    net: torch.nn.Module  # the model, wrapped in DDP under torchrun
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    mixer: MixBatchTransform
    mix_generator: torch.Generator
    device: torch.device
    autocast_dtype: torch.dtype | None
    total_steps: int = 1
    sigma_schedule: str = "constant"
    init_report: InitReport | None = None  # what the model started from, when not from scratch

    def state(self, class_names: list[str], epoch: int, best: list[float]) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "class_names": class_names,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": _rng_state(self.mix_generator, self.device),
            "epoch": epoch,
            "best": best,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"], self.mix_generator, self.device)

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
        """One optimiser step on a batch; returns (loss, lr used)."""
        step = self.scheduler.last_epoch  # steps taken so far, restored on resume
        self.model.sigma = sigma_at(step, self.total_steps, self.model.config.sigma, self.sigma_schedule)
        images, targets = self.mixer(images.to(self.device, non_blocking=True), labels.to(self.device))
        with torch.autocast(
            self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None
        ):
            loss = soft_cross_entropy(self.net(images).logits, targets)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        return float(loss.detach()), lr


def train(
    config: TrainConfig,
    *,
    progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
) -> TrainResult:
    """Finetune a fresh ScoreNet on ``config.data``: :func:`iter_train` run to its end."""
    return run_job(iter_train(config, should_stop=should_stop), progress)


def iter_train(config: TrainConfig, *, should_stop: StopFn | None = None) -> Job[TrainResult]:
    """Finetune a fresh ScoreNet, yielding a ``Progress`` per step; see the module docstring for the files.

    Each event counts optimisation steps over the whole run; its ``info`` holds ``epoch``, ``epochs``,
    ``step``, ``steps`` (of the epoch), ``loss`` and ``lr``, and at each epoch's end (``epoch_end``)
    the epoch's log row: ``train_loss`` and the validation metrics (``val_weighted_f1``, ...).
    ``should_stop()`` is asked between steps; a stop (or Ctrl-C) ends the run with ``stopped=True``,
    leaving the last finished epoch's checkpoint. The best checkpoint has the highest validation
    weighted F1; ties (and runs without a validation split) go to the lower training loss.
    """
    config.check()
    out = Path(config.out)
    device = _device(config)
    world = _init_distributed(device)
    splits = load_splits(
        config.data,
        split_csv=config.split_csv,
        val_fraction=config.val_fraction,
        seed=config.seed,
        min_classes=2,  # a classifier needs two classes to tell apart
    )
    class_names = splits.class_names
    run, train_loader, val_loader = _start(config, splits, world, device)
    start_epoch, best, history = 0, [-math.inf, -math.inf], []
    state = _resume(out, class_names, config) if config.resume else None
    if state is not None:
        run.load_state(state)
        start_epoch, best = int(state["epoch"]), [float(v) for v in state["best"]]
        history = json.loads(state["history"])
        log.info("resuming %s after epoch %d", out, start_epoch)
    elif config.resume:
        log.warning("%s holds no saved run to resume; starting afresh", out)
    elif world.is_main and (out / STATE).is_file():
        log.warning("%s holds an earlier run; starting afresh (resume continues it)", out)
    metadata = {"mpp": config.mpp} if config.mpp is not None else {}
    if world.is_main:
        out.mkdir(parents=True, exist_ok=True)
        config_json = {**config.to_json(), "class_names": class_names, "world_size": world.world_size,
                       "init_report": run.init_report.to_json() if run.init_report else None}  # fmt: skip
        atomic_write(out / CONFIG_JSON, json.dumps(config_json, indent=2))

    stopped = False
    try:
        for epoch in range(start_epoch, config.epochs):
            train_loader.batch_sampler.set_epoch(epoch)
            train_loader.dataset.set_epoch(epoch)
            run.net.train()
            total_loss, steps = 0.0, len(train_loader)
            count = {"epoch": epoch + 1, "epochs": config.epochs, "steps": steps}
            for step, (images, labels) in enumerate(train_loader, start=1):
                check_stop(should_stop, "training stopped")
                loss, lr = run.step(images, labels)
                total_loss += loss
                info = {**count, "step": step, "loss": loss, "lr": lr}
                yield Progress("train", epoch * steps + step, config.epochs * steps, "step", info)
            row: dict[str, Any] = {"epoch": epoch + 1, "train_loss": total_loss / steps, "lr": lr}
            if val_loader is not None:
                labels_np, predicted, _ = predict(
                    run.model, val_loader, device, autocast_dtype=run.autocast_dtype
                )
                metrics = classification_metrics(labels_np, predicted, class_names)
                row.update(
                    {f"val_{k}": v for k, v in metrics.items() if k not in ("class_names", "num_images")}
                )
            score = [row.get("val_weighted_f1", -math.inf), -row["train_loss"]]
            improved = score > best  # validation F1 first; ties go to the lower training loss
            best = max(best, score)
            history.append(row)
            if world.is_main:
                state = run.state(class_names, epoch + 1, best)
                # the log as of this state: a crash between writing log.json and the state cannot
                # leave a resumed run with a duplicated epoch
                state.update(options=_run_options(config), history=json.dumps(history))
                _save_epoch(out, run.model, class_names, metadata, improved, history, state)
            info = {**row, **count, "step": steps, "loss": row["train_loss"], "epoch_end": True}
            yield Progress("train", (epoch + 1) * steps, config.epochs * steps, "step", info)
    except (Cancelled, KeyboardInterrupt):
        stopped = True
        log.warning("training stopped; %s holds the last finished epoch", out / LAST)
    if world.world_size > 1:
        dist.barrier()
    return TrainResult(out / BEST, out / LAST, history, stopped, class_names, out)


def _start(
    config: TrainConfig, splits: DataSplits, world: _Dist, device: torch.device
) -> tuple[_Run, DataLoader, DataLoader | None]:
    """A fresh seeded model (its parts from ``config.init`` when given) with its optimizer, schedule,
    mixing and loaders."""
    torch.manual_seed(config.seed)
    num_classes = len(splits.class_names)
    model = build_model(config.model, num_classes, **config.overrides).to(device)
    # loaded after the seeded build: the fresh parts and every later random draw match a run without init
    init_report = load_init(model, config.init) if config.init is not None else None
    if init_report is not None:
        log.info("%s", init_report.summary())
    optimizer = make_optimizer(model, config)
    train_loader, val_loader = _loaders(config, splits, model, world)
    steps = len(train_loader)
    # the scorer is the second parameter group (make_optimizer)
    scheduler = cosine_scheduler(
        optimizer,
        config.epochs * steps,
        config.min_lr,
        warmup_steps=round(config.warmup_epochs * steps),
        delays=[0, round(config.scorer_freeze_epochs * steps)],
    )
    mix_generator = torch.Generator().manual_seed(config.seed)
    mixer = MixBatchTransform(
        config.mix, model=model, prob=config.mix_prob, generator=mix_generator, num_classes=num_classes
    )
    autocast_dtype = _autocast_dtype(config, device)
    run = _Run(
        model=model,
        net=DistributedDataParallel(model) if world.world_size > 1 else model,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=torch.amp.GradScaler(enabled=autocast_dtype == torch.float16),
        mixer=mixer,
        mix_generator=mix_generator,
        device=device,
        autocast_dtype=autocast_dtype,
        total_steps=config.epochs * steps,
        sigma_schedule=config.sigma_schedule,
        init_report=init_report,
    )
    return run, train_loader, val_loader


def _save_epoch(
    out: Path,
    model: ScoreNet,
    class_names: list[str],
    metadata: dict[str, Any],
    improved: bool,
    history: list[dict[str, Any]],
    state: dict[str, Any],
) -> None:
    """Write the epoch's files. The state holds its own copy of the weights, so resuming never depends
    on which of these files an interruption left behind."""
    epoch_meta = {**metadata, "epoch": state["epoch"], "val_weighted_f1": history[-1].get("val_weighted_f1")}
    save_checkpoint(model, out / LAST, class_names, epoch_meta)
    if improved:
        save_checkpoint(model, out / BEST, class_names, epoch_meta)
    write_logs(out, history)
    save_training_state(out / STATE, state)
