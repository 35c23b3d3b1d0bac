"""The banner classifier: a small plain CNN for the 96x48 ROI (needs torch).

The first layer keeps only each pixel's brightest and darkest channel
(:class:`HueFree`), so the gate cannot key on hue (the real DRAW is red, like
DEFEAT; generator v6 drew it white and the gate learnt the palette). Then only
Conv / BatchNorm / ReLU / Flatten / Linear: every op exports cleanly to ONNX
and runs fast on one onnxruntime thread (BatchNorm folds into the convs).
Strided convs bring 48x96 down to 3x6; a flatten keeps where in the ROI a
shape is, which helps tell a centred banner from a cut or displaced one.
"""

from __future__ import annotations

import torch
from torch import nn

ARCH = "maxmin-cnn6-s2x5-c16-32-48-64-96-96-fc"


class HueFree(nn.Module):
    """Each pixel's brightest and darkest channel: (N,3,H,W) -> (N,2,H,W).

    Any hue rotation (HSV) or channel permutation keeps a pixel's maximum and minimum channel, so
    nothing after this layer can tell a red word from a gold, white or blue one: the gate cannot key
    on hue, only on brightness (value) and how coloured a pixel is (max - min, the chroma).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.amax(dim=1, keepdim=True), x.amin(dim=1, keepdim=True)], dim=1)


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class BannerNet(nn.Module):
    def __init__(self, num_classes: int = 4, height: int = 48, width: int = 96, dropout: float = 0.2) -> None:
        super().__init__()
        if height % 16 or width % 16:
            raise ValueError("input height and width must be multiples of 16")
        self.features = nn.Sequential(
            HueFree(),
            _block(2, 16, 2),   # 24x48
            _block(16, 32, 2),  # 12x24
            _block(32, 48, 1),
            _block(48, 64, 2),  # 6x12
            _block(64, 96, 1),
            _block(96, 96, 2),  # 3x6
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(96 * (height // 16) * (width // 16), num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # type: ignore[no-any-return]
