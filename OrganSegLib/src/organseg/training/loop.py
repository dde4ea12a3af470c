"""The optimisation loop: Dice + BCE loss, Adam, validation Dice, early stopping, checkpoints and resume."""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from organseg.errors import InputError, ModelError, OrganSegError, brief
from organseg.masks import dice
from organseg.method.network import ResUNet2D
from organseg.training.config import FitConfig

Augment = Callable[[torch.Tensor, torch.Tensor, np.random.Generator], tuple[torch.Tensor, torch.Tensor]]


class Interrupted(OrganSegError):
    """Training was stopped by the user; the last checkpoint is kept for --resume."""

    exit_code = 130


def dice_bce_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Soft Dice loss over the batch plus binary cross-entropy."""
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum()
    dice_score = (2 * inter + eps) / (prob.sum() + target.sum() + eps)
    return (1 - dice_score) + nn.functional.binary_cross_entropy_with_logits(logits, target)


def _step(net: nn.Module, optimiser: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
    optimiser.zero_grad()
    loss = dice_bce_loss(net(x), y)
    loss.backward()
    optimiser.step()
    return float(loss.detach())


def _tensor(batch: np.ndarray) -> torch.Tensor:
    """(B, C, H, W) array -> float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))


def state_dict_arrays(net: nn.Module) -> dict[str, np.ndarray]:
    """The network's state dict as numpy arrays, for a model package."""
    return {k: v.detach().cpu().numpy().copy() for k, v in net.state_dict().items()}


@dataclass
class SliceSet:
    """Training or validation slices: inputs as float32 via `decode(codes)`, targets as bool.

    Sample i reads the code rows `rows[i]` as its channels: its own slice, or with 2.5D input its
    neighbourhood (`preprocess.context_rows` within its case); None: sample i is code row i alone.
    """

    codes: np.ndarray  #: (m, H, W) uint8 quantisation codes
    targets: np.ndarray  #: (n, H, W) bool
    decode: Callable[[np.ndarray], np.ndarray]
    #: (n, 2) where the organ is or would continue on each slice (`CaseSlices.centres`); None: unknown
    centres: np.ndarray | None = None
    rows: np.ndarray | None = None  #: (n, C) code rows of each sample's channels

    def __post_init__(self) -> None:
        if self.rows is None:
            self.rows = np.arange(len(self.codes))[:, None]

    def __len__(self) -> int:
        return len(self.targets)

    def batch(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return _tensor(self.decode(self.codes[self.rows[idx]])), _tensor(self.targets[idx][:, None])

    def patches(self, idx: np.ndarray, size: tuple[int, int], rng: np.random.Generator,
                foreground_fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Crops of the given slices: a share centred on a random organ pixel, the others anywhere.

        The network is fully convolutional, so crops train it at the scale of whole slices for a fraction of
        the cost, and centring on the organ counters the imbalance of small organs. On a slice beyond the
        organ's ends that share is centred where the organ would continue (`centres`): hard negatives.
        """
        h, w = size
        rows, cols = self.codes.shape[1:]
        x = np.empty((len(idx), self.rows.shape[1], h, w), np.uint8)
        y = np.empty((len(idx), 1, h, w), bool)
        for k, i in enumerate(idx):
            centred = rng.random() < foreground_fraction
            organ = np.flatnonzero(self.targets[i]) if centred else []
            if len(organ) or (centred and self.centres is not None):
                # the organ pixel (or where the organ would be) lands anywhere in the middle half
                r, c = divmod(int(rng.choice(organ)), cols) if len(organ) else self.centres[i]
                r0 = r - h // 2 + int(rng.integers(-(h // 4), h // 4 + 1))
                c0 = c - w // 2 + int(rng.integers(-(w // 4), w // 4 + 1))
            else:
                r0, c0 = int(rng.integers(0, rows - h + 1)), int(rng.integers(0, cols - w + 1))
            r0, c0 = min(max(r0, 0), rows - h), min(max(c0, 0), cols - w)
            x[k], y[k, 0] = self.codes[self.rows[i], r0:r0 + h, c0:c0 + w], self.targets[i, r0:r0 + h, c0:c0 + w]
        return _tensor(self.decode(x)), _tensor(y)


@dataclass
class FitState:
    """Everything that changes while training, saved with each checkpoint."""

    step: int = 0
    losses: list[float] = field(default_factory=list)
    val_history: list[list[float]] = field(default_factory=list)  #: [step, validation Dice]
    best_dice: float = -1.0
    best_step: int = 0
    bad_validations: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    rng: dict = field(default_factory=dict)


def validation_dice(net: nn.Module, val: SliceSet, batch_size: int = 8, device: str = "cpu") -> float:
    """Dice of the thresholded predictions pooled over all validation slices (network input size)."""
    net.eval()
    pred = np.empty(val.targets.shape, dtype=bool)
    with torch.inference_mode():
        for start in range(0, len(val), batch_size):
            x, _ = val.batch(np.arange(start, min(start + batch_size, len(val))))
            pred[start:start + len(x)] = (net(x.to(device))[:, 0] >= 0).cpu().numpy()  # logit 0: probability 0.5
    net.train()
    return dice(pred, val.targets)


class Trainer:
    """Adam on Dice + BCE with validation every `val_every` steps, keeping the best-validation weights."""

    def __init__(self, net: ResUNet2D, config: FitConfig, augment: Augment | None,
                 checkpoint: Path | None = None, identity: dict | None = None, device: str = "cpu",
                 workers: int = 0) -> None:
        """`device` 'cuda': mixed precision; `workers` > 0 or a GPU: batches made by that many DataLoader
        processes (0: in this one) and augmented on the device (`training.accelerated`)."""
        self.net, self.config, self.augment = net.to(device), config, augment
        self.device, self.workers = device, workers
        self.optimiser = torch.optim.Adam(net.parameters(), lr=config.lr)
        self.state = FitState()
        self.best = state_dict_arrays(net)
        # as a checkpoint stores it (JSON: a patch tuple comes back as a list), so that resume can compare
        self.checkpoint, self.identity = checkpoint, json.loads(json.dumps(identity or {}))
        self.rng = np.random.default_rng(config.seed)
        torch.manual_seed(config.seed)

    def resume(self) -> None:
        """Continue from the checkpoint file (same data, organ and settings)."""
        if self.checkpoint is None or not self.checkpoint.is_file():
            raise InputError(f"{self.checkpoint}: no checkpoint to resume from; start without --resume")
        try:  # weights_only: a checkpoint is data, never code, even one from elsewhere
            saved = torch.load(self.checkpoint, weights_only=True, map_location="cpu")
            identity = json.loads(saved["identity"])
        except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError, ... for a bad file
            raise ModelError(f"{self.checkpoint}: not a readable OrganSeg checkpoint ({brief(err)}); "
                             "delete it or start without --resume") from None
        if identity != self.identity:
            raise InputError(f"{self.checkpoint}: was made for other data, organ or settings "
                             f"({saved['identity']}); use another --work folder or delete it")
        try:
            self.net.load_state_dict(saved["net"])
            self.optimiser.load_state_dict(saved["optimiser"])
            self.best = {k: v.numpy() for k, v in saved["best"].items()}
            self.state = FitState(**json.loads(saved["state"]))
            self.rng.bit_generator.state = self.state.rng
            torch.set_rng_state(saved["torch_rng"])
        except Exception as err:  # missing keys, misshapen tensors, a state of another version
            raise ModelError(f"{self.checkpoint}: a damaged OrganSeg checkpoint ({brief(err)}); "
                             "delete it or start without --resume") from None
        self.state.stopped_early = self.state.bad_validations >= self.config.patience  # --patience may be new

    def save(self) -> None:
        """Write the checkpoint atomically."""
        if self.checkpoint is None:
            return
        self.state.rng = self.rng.bit_generator.state
        payload = {"net": self.net.state_dict(), "optimiser": self.optimiser.state_dict(),
                   "best": {k: torch.from_numpy(v) for k, v in self.best.items()},
                   "state": json.dumps(asdict(self.state)), "identity": json.dumps(self.identity),
                   "torch_rng": torch.get_rng_state()}
        tmp = self.checkpoint.with_name(self.checkpoint.name + ".tmp")
        torch.save(payload, tmp)
        os.replace(tmp, self.checkpoint)

    def fit(self, train: SliceSet, val: SliceSet, log: Callable[[str], None] = lambda s: None,
            progress: bool = True) -> FitState:
        """Train until `max_steps` or early stopping; the network ends with the best-validation weights."""
        cfg, state = self.config, self.state
        bar = tqdm(total=cfg.max_steps, initial=state.step, unit="step", file=sys.stderr, disable=not progress,
                   dynamic_ncols=True)
        self.net.train()
        if not state.val_history:
            self._validate(val, log)  # the starting point: untrained, or the parent model when fine-tuning
        sample, step = self._sampler(train, self.augment), partial(_step, self.net, self.optimiser)
        if self.device != "cpu" or self.workers:
            from organseg.training.accelerated import MixedPrecisionStep, augmented_on_device, batch_stream
            stream = batch_stream(self._sampler(train, None), [cfg.seed, state.step], self.workers,
                                  pin=self.device == "cuda")
            sample = augmented_on_device(stream, self.augment, self.device)
            step = MixedPrecisionStep(self.net, self.optimiser, self.device, dice_bce_loss)
        try:
            while state.step < cfg.max_steps and not state.stopped_early and not self._out_of_time():
                t0 = time.perf_counter()
                if cfg.poly_lr:
                    for group in self.optimiser.param_groups:
                        group["lr"] = cfg.lr * (1 - self._progress()) ** 0.9
                state.losses.append(step(*sample(self.rng)))
                state.step += 1
                state.seconds += time.perf_counter() - t0
                if state.step % cfg.val_every == 0 or state.step == cfg.max_steps or self._out_of_time():
                    self._validate(val, log)
                bar.update(1)
                bar.set_postfix(loss=f"{np.mean(state.losses[-10:]):.3f}",
                                val_dice=f"{state.val_history[-1][1]:.3f}" if state.val_history else "-",
                                best=f"{max(state.best_dice, 0):.3f}")
                if state.step % cfg.val_every == 0:
                    self.save()
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted at step {state.step}; checkpoints (every {cfg.val_every} steps) are "
                              f"in {self.checkpoint}: rerun with --resume to continue") from None
        finally:
            bar.close()
        self.save()
        self.net.load_state_dict({k: torch.from_numpy(v) for k, v in self.best.items()})
        self.net.eval()
        return state

    def _sampler(self, train: SliceSet, augment: Augment | None
                 ) -> Callable[[np.random.Generator], tuple[torch.Tensor, torch.Tensor]]:
        """A batch of training slices (or crops), augmented if given, drawn with the given generator."""
        cfg = self.config

        def sample(rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
            idx = rng.choice(len(train), cfg.batch_size, replace=len(train) < cfg.batch_size)
            x, y = train.batch(idx) if cfg.patch is None else \
                train.patches(idx, cfg.patch, rng, cfg.foreground_fraction)
            return augment(x, y, rng) if augment is not None else (x, y)
        return sample

    def _progress(self) -> float:
        """Share of the budget used: steps or training time, whichever runs out first."""
        cfg, state = self.config, self.state
        used = state.step / cfg.max_steps
        if cfg.max_seconds:
            used = max(used, state.seconds / cfg.max_seconds)
        return min(used, 1.0)

    def _out_of_time(self) -> bool:
        return self.config.max_seconds is not None and self.state.seconds >= self.config.max_seconds

    def _validate(self, val: SliceSet, log: Callable[[str], None]) -> None:
        state = self.state
        t0 = time.perf_counter()
        score = validation_dice(self.net, val, max(self.config.batch_size, 8), self.device)
        state.val_history.append([state.step, score])
        if score > state.best_dice:
            state.best_dice, state.best_step, state.bad_validations = score, state.step, 0
            self.best = state_dict_arrays(self.net)
        else:
            state.bad_validations += 1
            state.stopped_early = state.bad_validations >= self.config.patience
        state.seconds += time.perf_counter() - t0
        loss = f"loss {np.mean(state.losses[-self.config.val_every:]):.4f}, " if state.losses else ""
        log(f"step {state.step}: {loss}validation Dice {score:.4f} (best {state.best_dice:.4f} at step "
            f"{state.best_step})" + ("; early stop" if state.stopped_early else ""))
