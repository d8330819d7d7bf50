"""The image learner of paper 000: four 3-D conv blocks (conv + BatchNorm + ReLU + max-pool), three FC layers.

The paper gives the layer counts and the 128-d latent; widths and the pooling before the FC layers are
our choices (recorded here): channels 16-32-64-128, adaptive average pooling to 2^3 so any cube size works.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def conv_blocks(in_channels: int, channels: Sequence[int]) -> nn.Sequential:
    """``len(channels)`` x (3x3x3 conv without bias + BatchNorm + ReLU + 2x max-pool)."""
    blocks, prev = [], in_channels
    for width in channels:
        blocks += [nn.Conv3d(prev, width, 3, padding=1, bias=False), nn.BatchNorm3d(width), nn.ReLU(inplace=True),
                   nn.MaxPool3d(2)]
        prev = width
    return nn.Sequential(*blocks)


class ImageLearner(nn.Module):
    """3-D CNN with a 128-d latent before its last FC layer.

    Args:
        in_channels: MRI sequences (4).
        n_classes: output classes.
        channels: widths of the four conv blocks.
        latent: size of the latent (paper: 128).
        dropout: dropout before each FC layer.

    Shapes:
        x: (B, C, X, Y, Z) -> logits (B, n_classes); :meth:`encode` gives the latent (B, latent).
    """

    def __init__(self, in_channels: int = 4, n_classes: int = 2, channels: Sequence[int] = (16, 32, 64, 128),
                 latent: int = 128, dropout: float = 0.3):
        super().__init__()
        self.conv = conv_blocks(in_channels, channels)
        prev = channels[-1]
        self.pool = nn.AdaptiveAvgPool3d(2)
        self.fc = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(prev * 8, 2 * latent), nn.ReLU(inplace=True),
                                nn.Dropout(dropout), nn.Linear(2 * latent, latent), nn.ReLU(inplace=True))
        self.head = nn.Linear(latent, n_classes)

    @property
    def last_conv(self) -> nn.Module:
        """The last convolution block's output layer (for Grad-CAM)."""
        return self.conv[-2]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.conv(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encode(x))
