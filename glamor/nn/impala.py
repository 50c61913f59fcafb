"""The Impala-style ResNet encoder of the spec.

Three stages; each is conv3x3 (stride 1, pad 1, no bias), max-pool 3 stride 2 (no padding),
GroupNorm(4), ReLU, then two residual blocks (conv-GN-ReLU-conv-GN plus identity, then ReLU;
the second GroupNorm's weight starts at 0 so each block starts as the identity). Flatten, then
Linear to `out_dim`. Input: uint8 images (B, C, H, W), scaled by 1/255 inside.

For the reference 80x104 input and channels (16, 32, 32) the flattened size is 32 x 9 x 12.
"""

from __future__ import annotations

import torch
from torch import nn


def _groups(channels: int) -> int:
    return 4 if channels % 4 == 0 else 1


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(_groups(channels), channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(_groups(channels), channels)
        nn.init.zeros_(self.norm2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.norm1(self.conv1(x)))
        return torch.relu(x + self.norm2(self.conv2(y)))


class ImpalaStage(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(3, stride=2)
        self.norm = nn.GroupNorm(_groups(out_channels), out_channels)
        self.blocks = nn.Sequential(ResidualBlock(out_channels), ResidualBlock(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(torch.relu(self.norm(self.pool(self.conv(x)))))


def pooled_size(size: int, stages: int) -> int:
    """Spatial size after `stages` max-pools of kernel 3, stride 2, no padding."""
    for _ in range(stages):
        size = (size - 3) // 2 + 1
    return size


class ImpalaEncoder(nn.Module):
    """uint8 (B, C, H, W) -> float (B, out_dim).

    Example:
        >>> enc = ImpalaEncoder(4, (80, 104))
        >>> enc(torch.zeros(2, 4, 80, 104, dtype=torch.uint8)).shape
        torch.Size([2, 512])
    """

    def __init__(
        self,
        in_channels: int,
        image_hw: tuple[int, int],
        channels: tuple[int, ...] = (16, 32, 32),
        out_dim: int = 512,
    ):
        super().__init__()
        self.in_channels, self.image_hw = in_channels, tuple(image_hw)
        stages, c = [], in_channels
        for out_c in channels:
            stages.append(ImpalaStage(c, out_c))
            c = out_c
        self.stages = nn.Sequential(*stages)
        h, w = (pooled_size(s, len(channels)) for s in image_hw)
        if h < 1 or w < 1:
            need = next(n for n in range(1, 1 << 20) if pooled_size(n, len(channels)) >= 1)
            raise ValueError(f"image_hw {tuple(image_hw)} is too small for {len(channels)} Impala stages "
                             f"(each max-pool 3 stride 2): they need at least {need} pixels a side (larger frames, or fewer "
                             f"stages: fewer encoder_channels)")
        self.flat_dim = c * h * w
        self.fc = nn.Linear(self.flat_dim, out_dim)
        self.to(memory_format=torch.channels_last)  # oneDNN's fast layout for small convs on CPU

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.to(self.fc.weight.dtype) / 255.0).contiguous(memory_format=torch.channels_last)  # (B, C, H, W)
        x = self.stages(x)  # (B, c, h, w)
        return self.fc(x.flatten(1))  # (B, out_dim)
