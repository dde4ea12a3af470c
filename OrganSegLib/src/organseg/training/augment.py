"""Training augmentation: intensity scale/shift and small in-plane rotations and scalings.

No left-right flip: the networks must tell left from right organs (kidneys, adrenals, femur heads).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F


@dataclass(frozen=True)
class Augmentation:
    """Ranges of the random transforms; each sample of a batch draws its own parameters."""

    max_rotation_deg: float = 10.0
    scale: tuple[float, float] = (0.9, 1.1)
    intensity_scale: tuple[float, float] = (0.9, 1.1)
    intensity_shift: tuple[float, float] = (-0.05, 0.05)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment a batch: x (B, 1, H, W) inputs in [0, 1], y (B, 1, H, W) targets in {0, 1}, on their device."""
        n, _, h, w = x.shape
        angle = np.deg2rad(rng.uniform(-self.max_rotation_deg, self.max_rotation_deg, n))
        zoom = rng.uniform(*self.scale, n)
        gain = rng.uniform(*self.intensity_scale, n)
        shift = rng.uniform(*self.intensity_shift, n)
        # Rotation and zoom in pixel units, expressed in affine_grid's [-1, 1] coordinates of each axis.
        to_pixels = np.diag([w / 2.0, h / 2.0])
        theta = np.zeros((n, 2, 3), dtype=np.float32)
        for i in range(n):
            c, s = np.cos(angle[i]), np.sin(angle[i])
            theta[i, :, :2] = np.linalg.inv(to_pixels) @ (np.array([[c, -s], [s, c]]) / zoom[i]) @ to_pixels
        grid = F.affine_grid(torch.from_numpy(theta).to(x.device), [n, 1, h, w], align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        y = (F.grid_sample(y, grid, mode="bilinear", padding_mode="zeros", align_corners=False) >= 0.5).float()
        x = x * torch.from_numpy(gain.astype(np.float32)).to(x.device)[:, None, None, None] \
            + torch.from_numpy(shift.astype(np.float32)).to(x.device)[:, None, None, None]
        return x.clamp(0.0, 1.0), y
