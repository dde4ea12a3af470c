"""The light 2D Res-UNet of the method (about 0.5 M parameters), in PyTorch.

Input (N, C, 224, 304) quantised CT slices, output (N, 1, 224, 304) logits of one organ. C is 1 (the paper's
2D network) or 2k + 1 for a package that also reads the k slices on each side (`ModelPackage.context`).
"""
from __future__ import annotations

import torch
from torch import nn

DEFAULT_CHANNELS = (16, 32, 64, 128)


class ResBlock(nn.Module):
    """Two 3x3 conv-BN layers with a residual shortcut (1x1 conv where the width changes)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out))
        self.shortcut = nn.Identity() if c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class ResUNet2D(nn.Module):
    """U-Net with residual blocks; len(channels)-1 down-samplings, so inputs must divide by 2**(len-1)."""

    def __init__(self, channels: tuple[int, ...] = DEFAULT_CHANNELS, in_channels: int = 1) -> None:
        super().__init__()
        self.channels, self.in_channels = tuple(channels), in_channels
        self.encoders = nn.ModuleList()
        c_prev = in_channels
        for c in channels:
            self.encoders.append(ResBlock(c_prev, c))
            c_prev = c
        self.pool = nn.MaxPool2d(2)
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for c_deep, c in zip(channels[::-1][:-1], channels[::-1][1:]):
            self.ups.append(nn.ConvTranspose2d(c_deep, c, 2, stride=2))
            self.decoders.append(ResBlock(2 * c, c))
        self.head = nn.Conv2d(channels[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, encoder in enumerate(self.encoders):
            x = encoder(x if i == 0 else self.pool(x))
            skips.append(x)
        for up, decoder, skip in zip(self.ups, self.decoders, skips[-2::-1]):
            x = decoder(torch.cat([up(x), skip], dim=1))
        return self.head(x)
