"""The optimisation loop: Dice + BCE loss, Adam, on batches of slice pairs."""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from organseg.network import ResUNet2D


def dice_bce_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Soft Dice loss over the batch plus binary cross-entropy."""
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum()
    dice = (2 * inter + eps) / (prob.sum() + target.sum() + eps)
    return (1 - dice) + nn.functional.binary_cross_entropy_with_logits(logits, target)


def batches(inputs: np.ndarray, targets: np.ndarray, batch_size: int, rng: np.random.Generator
            ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Endless shuffled batches of (x, y), each (B, 1, H, W)."""
    while True:
        order = rng.permutation(len(inputs))
        for start in range(0, len(order) - batch_size + 1 if len(order) >= batch_size else 1, batch_size):
            idx = order[start:start + batch_size]
            yield inputs[idx][:, None], targets[idx][:, None]


def train_steps(net: ResUNet2D, inputs: np.ndarray, targets: np.ndarray, steps: int, batch_size: int = 8,
                lr: float = 1e-3, seed: int = 0,
                augment: Callable[[np.ndarray, np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]
                | None = None, on_step: Callable[[int, float], None] | None = None) -> list[float]:
    """Train `net` in place for `steps` Adam steps; returns the loss of every step."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    optimiser = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    losses = []
    stream = batches(inputs, targets, batch_size, rng)
    for step in range(steps):
        x, y = next(stream)
        if augment is not None:
            x, y = augment(x, y, rng)
        optimiser.zero_grad()
        loss = dice_bce_loss(net(torch.from_numpy(np.ascontiguousarray(x))),
                             torch.from_numpy(np.ascontiguousarray(y)))
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
        if on_step:
            on_step(step, losses[-1])
    net.eval()
    return losses


def state_dict_arrays(net: nn.Module) -> dict[str, np.ndarray]:
    """The network's state dict as numpy arrays, for a model package."""
    return {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}
