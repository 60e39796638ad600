"""The scratch-detection UNet of Microsoft's "Bringing Old Photos Back to Life" (BOPBTL).

Module and buffer names match the published `FT_Epoch_latest.pt` (its `model_state` entry), so
the checkpoint loads strictly. Layout, as BOPBTL's `Global/detection_models/networks.py` builds it
for detection (`depth=4, wf=6, conv_num=2`, batch norm, reflection padding, bilinear upsampling,
anti-aliased downsampling, no tanh):

    first          reflect-pad 3, 7x7 conv in -> 2**wf, LeakyReLU(0.2)
    down_sample.i  reflect-pad 1, 3x3 conv C -> C, BN, LeakyReLU, binomial blur with stride 2
    down_path.i    conv_num x (reflect-pad 1, 3x3 conv, BN, LeakyReLU); C -> 2**(wf+i+1)
    up_path.j      bilinear x2, reflect-pad 1, 3x3 conv halving C; concat the centre-cropped skip;
                   conv_num x (reflect-pad 1, 3x3 conv, BN, LeakyReLU)
    last           reflect-pad 1, 3x3 conv 2**wf -> out (logits)

Weight-less layers keep their positions inside each `nn.Sequential` so the indices in the
parameter names (`block.1`, `block.5`, `up.2`, `down_sample.0.4.filt`, ...) line up. Height and
width must be multiples of 2**depth (16 for the published network).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

MARKER_KEYS = ("first.1.weight", "down_path.0.block.1.weight", "down_sample.0.4.filt",
               "up_path.0.up.2.weight", "last.1.weight")


@dataclass(frozen=True)
class ScratchUNetConfig:
    """Hyper-parameters of the detection UNet; the defaults are the published network's."""
    depth: int = 4
    wf: int = 6
    in_channels: int = 1
    out_channels: int = 1
    conv_num: int = 2

    @property
    def base_channels(self) -> int:
        return 2 ** self.wf

    @classmethod
    def from_state_dict(cls, state_dict: dict[str, torch.Tensor]) -> "ScratchUNetConfig":
        """Reads the architecture off the tensors' names and shapes (prefix already stripped).

        Raises ValueError when the dict is not a BOPBTL detection UNet."""
        missing = [key for key in MARKER_KEYS if key not in state_dict]
        if missing:
            sample = ", ".join(sorted(state_dict)[:5]) or "nothing"
            raise ValueError(
                "not a BOPBTL scratch-detection UNet state dict: missing "
                f"{', '.join(missing)} (it holds {len(state_dict)} entries, e.g. {sample})")
        first = state_dict["first.1.weight"]
        base = first.shape[0]
        wf = int(round(math.log2(base))) if base > 0 else -1
        if first.ndim != 4 or first.shape[2:] != (7, 7) or wf < 0 or 2 ** wf != base:
            raise ValueError(f"first.1.weight has shape {tuple(first.shape)}: expected "
                             "(2**wf, in_channels, 7, 7)")
        depth = _count_indices(state_dict, "down_path")
        if _count_indices(state_dict, "down_sample") != depth or \
                _count_indices(state_dict, "up_path") != depth:
            raise ValueError("down_path, down_sample and up_path hold different numbers of "
                             "levels: not a BOPBTL scratch-detection UNet")
        conv_num = sum(1 for key, value in state_dict.items()
                       if re.fullmatch(r"down_path\.0\.block\.\d+\.weight", key)
                       and value.ndim == 4)
        return cls(depth=depth, wf=wf, in_channels=first.shape[1],
                   out_channels=state_dict["last.1.weight"].shape[0], conv_num=conv_num)


def _count_indices(state_dict: dict[str, torch.Tensor], family: str) -> int:
    """The number of consecutive levels `family.0`, `family.1`, ... present in the keys."""
    indices = {int(match.group(1)) for key in state_dict
               if (match := re.match(rf"{family}\.(\d+)\.", key))}
    count = 0
    while count in indices:
        count += 1
    return count


class BinomialDownsample(nn.Module):
    """Anti-aliased stride-2 downsampling: a fixed depthwise [1,2,1] x [1,2,1] / 16 blur on a
    reflect-padded input (Zhang 2019, "Making convolutional networks shift-invariant again")."""

    def __init__(self, channels: int):
        super().__init__()
        taps = torch.tensor([1.0, 2.0, 1.0])
        kernel = taps[:, None] * taps[None, :]
        # Persistent: the published checkpoint stores the kernel as `filt`, so strict loading
        # needs it in the state dict.
        self.register_buffer("filt", (kernel / kernel.sum()).repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), self.filt, stride=2,
                        groups=x.shape[1])


class ConvBlock(nn.Module):
    """`conv_num` x (reflect-pad 1, 3x3 conv, BatchNorm, LeakyReLU 0.2) as `block`."""

    def __init__(self, conv_num: int, in_channels: int, out_channels: int):
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(conv_num):
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(in_channels, out_channels, 3),
                       nn.BatchNorm2d(out_channels), nn.LeakyReLU(0.2, inplace=True)]
            in_channels = out_channels
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class UpBlock(nn.Module):
    """Bilinear x2 and a 3x3 conv halving the channels, concatenation with the centre-cropped
    skip (upsampled features first), then a `ConvBlock`."""

    def __init__(self, conv_num: int, in_channels: int, out_channels: int):
        super().__init__()
        self.up = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.ReflectionPad2d(1),
            nn.Conv2d(in_channels, out_channels, 3),
        )
        self.conv_block = ConvBlock(conv_num, in_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = self.up(x)
        height, width = up.shape[2:]
        top = (skip.shape[2] - height) // 2
        left = (skip.shape[3] - width) // 2
        skip = skip[:, :, top:top + height, left:left + width]
        return self.conv_block(torch.cat([up, skip], dim=1))


class ScratchUNet(nn.Module):
    """BOPBTL's scratch detector: B x in_channels x H x W (grayscale in [-1, 1]) to
    B x out_channels x H x W logits; H and W multiples of 2**depth."""

    def __init__(self, config: ScratchUNetConfig = ScratchUNetConfig()):
        super().__init__()
        self.config = config
        channels = config.base_channels
        self.first = nn.Sequential(nn.ReflectionPad2d(3),
                                   nn.Conv2d(config.in_channels, channels, 7),
                                   nn.LeakyReLU(0.2, inplace=True))
        self.down_path = nn.ModuleList()
        self.down_sample = nn.ModuleList()
        for level in range(config.depth):
            self.down_sample.append(nn.Sequential(
                nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3),
                nn.BatchNorm2d(channels), nn.LeakyReLU(0.2, inplace=True),
                BinomialDownsample(channels)))
            out_channels = 2 ** (config.wf + level + 1)
            self.down_path.append(ConvBlock(config.conv_num, channels, out_channels))
            channels = out_channels
        self.up_path = nn.ModuleList()
        for level in reversed(range(config.depth)):
            out_channels = 2 ** (config.wf + level)
            self.up_path.append(UpBlock(config.conv_num, channels, out_channels))
            channels = out_channels
        self.last = nn.Sequential(nn.ReflectionPad2d(1),
                                  nn.Conv2d(channels, config.out_channels, 3))

    @classmethod
    def from_state_dict(cls, state_dict: dict[str, torch.Tensor]) -> "ScratchUNet":
        """Builds the network the state dict describes, loads it strictly, in eval mode."""
        network = cls(ScratchUNetConfig.from_state_dict(state_dict))
        network.load_state_dict(state_dict, strict=True)
        return network.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first(x)
        skips = []
        for down_sample, down in zip(self.down_sample, self.down_path):
            skips.append(x)
            x = down(down_sample(x))
        for up, skip in zip(self.up_path, reversed(skips)):
            x = up(x, skip)
        return self.last(x)
