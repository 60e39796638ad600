"""CAP-VSTNet's reversible residual network (Wen et al., CVPR 2023), written anew.

The network maps an image in [0, 1] to features and back, exactly invertibly: every residual
block adds a function of one half of the channels to the other half, and the extra channels it
needs are zeros appended at the input. Module and parameter names follow the authors'
`models/RevResNet.py` (linfengWen98/CAP-VSTNet, MIT), so the published `photo_image.pt`
(its `state_dict` entry) loads strictly:

    stack.{i}.conv.{1,4,7}.{weight,bias}                        3 stages of residual blocks
    channel_reduction.block_list.{j}.conv.{1,4,7}.{weight,bias}  2 blocks before the spread

Indices 0, 3, 6 of each `conv` are reflection pads and 2, 5 ReLUs; nothing else holds state (no
buffers). The architecture is described by `RevResNetConfig`; `RevResNetConfig.from_state_dict`
reads it off a checkpoint's shapes, so the published file and tiny test networks load through
the same code.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..state_dicts import unwrap_state_dict

MARKER_KEYS = ("stack.0.conv.1.weight", "channel_reduction.block_list.0.conv.1.weight")
"""Keys every RevResNet state dict has; their absence means another architecture."""

REDUCTION_MULT = 4
"""Width divisor inside the channel-reduction blocks: fixed upstream, whatever `mult` says."""


@dataclass(frozen=True)
class RevResNetConfig:
    """The constructor arguments of upstream's `RevResNet`.

    blocks / strides / channels: nBlocks / nStrides / nChannels, one entry per stage. A stage of
    stride 2 halves the resolution and multiplies the channels (of each half) by 4.
    in_channel: image channels; the input is zero-padded to 2 * channels[0] channels.
    mult: width divisor of the residual branch in the stage blocks.
    hidden_dim, sp_steps: the features have 2 * hidden_dim channels, spread back up by
        2 ** sp_steps in each direction from the deepest resolution.
    reduction_blocks: residual blocks in the channel reduction (2 upstream, not an argument there).
    """
    blocks: tuple[int, ...]
    strides: tuple[int, ...]
    channels: tuple[int, ...]
    in_channel: int = 3
    mult: int = 4
    hidden_dim: int = 16
    sp_steps: int = 2
    kernel: int = 3
    reduction_blocks: int = 2

    def __post_init__(self) -> None:
        stages = len(self.blocks)
        if not stages or len(self.strides) != stages or len(self.channels) != stages:
            raise ValueError("blocks, strides and channels need one entry per stage, "
                             f"got {self.blocks}, {self.strides}, {self.channels}")
        if min(self.blocks) < 1:
            raise ValueError(f"every stage needs at least one block, got {self.blocks}")
        if any(stride not in (1, 2) for stride in self.strides) or self.strides[0] != 1:
            raise ValueError(f"strides must be 1 or 2, the first 1; got {self.strides}")
        for stage in range(1, stages):
            growth = 4 if self.strides[stage] == 2 else 1
            if self.channels[stage] != self.channels[stage - 1] * growth:
                raise ValueError(f"stage {stage} of stride {self.strides[stage]} must have "
                                 f"{growth}x the channels of the stage before, got {self.channels}")
        if any(channel % self.mult for channel in self.channels):
            raise ValueError(f"channels {self.channels} are not multiples of mult={self.mult}")
        if not 0 < self.in_channel <= 2 * self.channels[0]:
            raise ValueError(f"in_channel={self.in_channel} does not fit in 2 x {self.channels[0]}")
        if self.reduction_channels < self.channels[-1] or self.reduction_channels % REDUCTION_MULT:
            raise ValueError(f"hidden_dim * 4 ** sp_steps = {self.reduction_channels} must be a "
                             f"multiple of 4 and at least channels[-1] = {self.channels[-1]}")
        if self.kernel < 1 or self.kernel % 2 == 0 or self.reduction_blocks < 1:
            raise ValueError("kernel must be odd and reduction_blocks positive")

    @classmethod
    def photorealistic(cls) -> "RevResNetConfig":
        """The model behind `photo_image.pt`."""
        return cls(blocks=(10, 10, 10), strides=(1, 2, 2), channels=(16, 64, 256),
                   in_channel=3, mult=4, hidden_dim=16, sp_steps=2)

    @classmethod
    def artistic(cls) -> "RevResNetConfig":
        """The model behind upstream's artistic checkpoint: the same tensors' shapes as the
        photorealistic one, only the spread differs."""
        return cls(blocks=(10, 10, 10), strides=(1, 2, 2), channels=(16, 64, 256),
                   in_channel=3, mult=4, hidden_dim=64, sp_steps=1)

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, torch.Tensor], *, sp_steps: int = 2,
                        in_channel: int = 3) -> "RevResNetConfig":
        """Reads the architecture off the tensors' names and shapes.

        Takes the flat state dict (RevResNet.from_state_dict unwraps a checkpoint once). Shapes
        fix stages, strides, channels, mult, kernel and the block counts; they only fix
        hidden_dim * 4 ** sp_steps, so `sp_steps` (2: photorealistic) and `in_channel` (not stored
        anywhere) are told. Consecutive stride-1 stages of equal width are read as one stage,
        which builds the same network.
        """
        missing = [key for key in MARKER_KEYS if key not in state_dict]
        if missing:
            raise ValueError("not a CAP-VSTNet RevResNet state dict: missing marker keys "
                             + ", ".join(missing))

        def block_shape(prefix: str) -> tuple[int, int, int, int]:
            names = [f"{prefix}.conv.{index}.weight" for index in (1, 4, 7)]
            absent = [name for name in names if name not in state_dict]
            if absent:
                raise ValueError(f"incomplete RevResNet state dict: missing {', '.join(absent)}")
            first, last = state_dict[names[0]].shape, state_dict[names[2]].shape
            if len(first) != 4 or len(last) != 4:
                raise ValueError(f"{prefix}: convolution weights must be 4-D")
            # (channels of the block, inputs of its first conv, width of its branch, kernel)
            return last[0], first[1], first[0], first[-1]

        blocks: list[int] = []
        strides: list[int] = []
        channels: list[int] = []
        mults: set[int] = set()
        kernels: set[int] = set()
        index = 0
        while f"stack.{index}.conv.1.weight" in state_dict:
            channel, inputs, width, kernel = block_shape(f"stack.{index}")
            if inputs == channel:
                stride = 1
            elif inputs * 4 == channel:
                stride = 2
            else:
                raise ValueError(f"stack.{index}: {inputs} inputs fit neither stride 1 nor 2 "
                                 f"for a block of {channel} channels")
            if width == 0 or channel % width:
                raise ValueError(f"stack.{index}: branch width {width} does not divide {channel}")
            mults.add(channel // width)
            kernels.add(kernel)
            if index == 0 or stride == 2 or channel != channels[-1]:
                blocks.append(1)
                strides.append(stride)
                channels.append(channel)
            else:
                blocks[-1] += 1
            index += 1

        reduction_blocks = 0
        reduction_channels: set[int] = set()
        while f"channel_reduction.block_list.{reduction_blocks}.conv.1.weight" in state_dict:
            channel, inputs, width, kernel = block_shape(
                f"channel_reduction.block_list.{reduction_blocks}")
            if inputs != channel or width * REDUCTION_MULT != channel:
                raise ValueError(f"channel_reduction.block_list.{reduction_blocks}: shapes do not "
                                 "match a stride-1 block of mult 4")
            reduction_channels.add(channel)
            kernels.add(kernel)
            reduction_blocks += 1

        if len(mults) != 1 or len(kernels) != 1 or len(reduction_channels) != 1:
            raise ValueError(f"blocks disagree: mult {sorted(mults)}, kernel {sorted(kernels)}, "
                             f"reduction width {sorted(reduction_channels)}")
        reduction = reduction_channels.pop()
        if reduction % 4 ** sp_steps:
            raise ValueError(f"reduction width {reduction} is not hidden_dim * 4 ** {sp_steps}")
        return cls(blocks=tuple(blocks), strides=tuple(strides), channels=tuple(channels),
                   in_channel=in_channel, mult=mults.pop(), hidden_dim=reduction // 4 ** sp_steps,
                   sp_steps=sp_steps, kernel=kernels.pop(), reduction_blocks=reduction_blocks)

    @property
    def reduction_channels(self) -> int:
        """Channels of each half inside the channel reduction."""
        return self.hidden_dim * 4 ** self.sp_steps

    @property
    def down_scale(self) -> int:
        """Image sides must be multiples of this."""
        return math.prod(self.strides)

    @property
    def feature_channels(self) -> int:
        return 2 * self.hidden_dim


def squeeze2(x: torch.Tensor) -> torch.Tensor:
    """Space to depth by 2, in upstream's channel order: output channel (2 * dy + dx) * C + c
    holds input channel c at offset (dy, dx). (Not pixel_unshuffle's order.)"""
    b, c, h, w = x.shape
    blocks = x.reshape(b, c, h // 2, 2, w // 2, 2)
    return blocks.permute(0, 3, 5, 1, 2, 4).reshape(b, 4 * c, h // 2, w // 2)


def unsqueeze2(x: torch.Tensor) -> torch.Tensor:
    """Depth to space by 2, the inverse of `squeeze2`."""
    b, c4, h, w = x.shape
    blocks = x.reshape(b, 2, 2, c4 // 4, h, w)
    return blocks.permute(0, 3, 4, 1, 5, 2).reshape(b, c4 // 4, 2 * h, 2 * w)


def _pad_channels(x: torch.Tensor, extra: int) -> torch.Tensor:
    """Appends `extra` zero channels (upstream's injective pad)."""
    return F.pad(x, (0, 0, 0, 0, 0, extra)) if extra else x


class ReversibleBlock(nn.Module):
    """(a, b) -> (b', a' + F(b)); primes are space-to-depth when the stride is 2."""

    def __init__(self, channels: int, stride: int, mult: int, kernel: int):
        super().__init__()
        self.stride = stride
        inputs = channels if stride == 1 else channels // 4
        width = channels // mult
        pad = (kernel - 1) // 2
        self.conv = nn.Sequential(
            nn.ReflectionPad2d(pad), nn.Conv2d(inputs, width, kernel, stride=stride),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(pad), nn.Conv2d(width, width, kernel),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(pad), nn.Conv2d(width, channels, kernel))
        for layer in self.conv:
            if isinstance(layer, nn.Conv2d):
                nn.init.zeros_(layer.bias)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        update = self.conv(b)
        if self.stride == 2:
            a, b = squeeze2(a), squeeze2(b)
        return b, a + update

    def inverse(self, b: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.stride == 2:
            b = unsqueeze2(b)
        a = y - self.conv(b)
        if self.stride == 2:
            a = unsqueeze2(a)
        return a, b


class ChannelReduction(nn.Module):
    """Pads each half to `reduction_channels`, mixes them, then spreads channels back into space
    `sp_steps` times (depth to space by 2 each)."""

    def __init__(self, in_channels: int, config: RevResNetConfig):
        super().__init__()
        self.extra = config.reduction_channels - in_channels
        self.sp_steps = config.sp_steps
        self.block_list = nn.ModuleList(
            ReversibleBlock(config.reduction_channels, 1, REDUCTION_MULT, config.kernel)
            for _ in range(config.reduction_blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = (_pad_channels(half, self.extra) for half in x.chunk(2, dim=1))
        for block in self.block_list:
            a, b = block(a, b)
        x = torch.cat((a, b), dim=1)
        for _ in range(self.sp_steps):
            x = unsqueeze2(x)
        return x

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.sp_steps):
            x = squeeze2(x)
        a, b = x.chunk(2, dim=1)
        for block in reversed(self.block_list):
            a, b = block.inverse(a, b)
        keep = a.shape[1] - self.extra
        return torch.cat((a[:, :keep], b[:, :keep]), dim=1)


class RevResNet(nn.Module):
    """`forward(x)`: image B x in_channel x H x W (sides multiples of `down_scale`, at least
    `min_side`) -> features B x 2*hidden_dim x H*2**sp_steps/down_scale x (same for W).
    `forward(z, forward=False)`: the exact inverse."""

    def __init__(self, config: RevResNetConfig):
        super().__init__()
        self.config = config
        self.stack = nn.ModuleList()
        for depth, stride, channels in zip(config.blocks, config.strides, config.channels):
            for index in range(depth):
                self.stack.append(ReversibleBlock(channels, stride if index == 0 else 1,
                                                  config.mult, config.kernel))
        self.channel_reduction = ChannelReduction(config.channels[-1], config)

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, torch.Tensor], *, sp_steps: int = 2,
                        in_channel: int = 3) -> "RevResNet":
        """Builds the network a state dict (or an upstream checkpoint) describes and loads it
        strictly; returned in eval mode with gradients off, sharing the given tensors."""
        state_dict = unwrap_state_dict(state_dict)
        config = RevResNetConfig.from_state_dict(state_dict, sp_steps=sp_steps,
                                                 in_channel=in_channel)
        with torch.device("meta"):
            network = cls(config).requires_grad_(False)
        try:
            # assign: the network takes the given tensors (device, dtype, no copy); with
            # gradients off first, inference tensors (ComfyUI loads under inference mode) are
            # accepted outside inference mode too.
            network.load_state_dict(state_dict, strict=True, assign=True)
        except RuntimeError as error:
            raise ValueError(f"state dict does not match a CAP-VSTNet RevResNet: {error}") from None
        return network.eval()

    @property
    def down_scale(self) -> int:
        return self.config.down_scale

    @property
    def min_side(self) -> int:
        """Smallest image side: reflection padding needs the deepest map wider than the pad."""
        return self.config.down_scale * ((self.config.kernel - 1) // 2 + 1)

    def forward(self, x: torch.Tensor, forward: bool = True) -> torch.Tensor:
        return self.encode(x) if forward else self.decode(x)

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        config = self.config
        if image.dim() != 4 or image.shape[1] != config.in_channel:
            raise ValueError(f"expected B x {config.in_channel} x H x W, got {tuple(image.shape)}")
        height, width = image.shape[-2:]
        step = self.down_scale
        if height % step or width % step or min(height, width) < self.min_side:
            raise ValueError(f"image sides must be multiples of {self.down_scale} and at least "
                             f"{self.min_side}, got {height} x {width}")
        x = _pad_channels(image, 2 * config.channels[0] - config.in_channel)
        a, b = x.chunk(2, dim=1)
        for block in self.stack:
            a, b = block(a, b)
        return self.channel_reduction(torch.cat((a, b), dim=1))

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        config = self.config
        spread = 2 ** config.sp_steps
        if features.dim() != 4 or features.shape[1] != config.feature_channels or \
                features.shape[2] % spread or features.shape[3] % spread:
            raise ValueError(f"expected B x {config.feature_channels} x H x W with sides multiples "
                             f"of {spread}, got {tuple(features.shape)}")
        x = self.channel_reduction.inverse(features)
        a, b = x.chunk(2, dim=1)
        for block in reversed(self.stack):
            a, b = block.inverse(a, b)
        return torch.cat((a, b), dim=1)[:, :config.in_channel]
