"""The OpenAI guided-diffusion UNet as used by DifFace/PGDiff/SSDiff for the FFHQ-512 face DDPM.

Module and parameter names match the published `iddpm_ffhq512_ema500000.pth` (after its
"module." prefix is stripped), so the checkpoint loads strictly. The network is described by
`FaceUNetConfig`, which `FaceUNetConfig.from_state_dict` reads off a checkpoint's shapes: the
published file and the tiny test networks load through the same path.

Its weighted layers are made by an `operations` namespace (Conv1d, Conv2d, Linear, GroupNorm32),
as ComfyUI's own UNets take theirs: plain torch here; the host passes layers that ComfyUI can leave
in system memory and stream to the GPU a layer at a time (--lowvram, --novram), with the same
names and the same forward otherwise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

HEAD_CHANNELS = 64
"""Channels per attention head in the published model; a narrower layer gets a single head."""


@dataclass(frozen=True)
class FaceUNetConfig:
    model_channels: int
    channel_mult: tuple[int, ...]
    num_res_blocks: tuple[int, ...]
    attention_levels: tuple[bool, ...]
    in_channels: int = 3
    out_channels: int = 6

    @classmethod
    def ffhq512(cls) -> "FaceUNetConfig":
        """The DifFace FFHQ-512 model: attention where the feature map is 32, 16 and 8 px wide."""
        return cls(
            model_channels=32,
            channel_mult=(1, 2, 4, 8, 8, 16, 16),
            num_res_blocks=(1, 2, 2, 2, 2, 3, 4),
            attention_levels=(False, False, False, False, True, True, True),
        )

    @classmethod
    def from_state_dict(cls, state_dict: dict[str, torch.Tensor]) -> "FaceUNetConfig":
        """Reads the architecture off the tensors' names and shapes (prefix already stripped)."""
        model_channels = state_dict["time_embed.0.weight"].shape[1]
        channel_mult: list[int] = []
        num_res_blocks: list[int] = []
        attention_levels: list[bool] = []
        res_blocks_in_level, attention_in_level, level_channels = 0, False, None
        index = 1
        while f"input_blocks.{index}.0.op.weight" in state_dict or \
                f"input_blocks.{index}.0.in_layers.2.weight" in state_dict:
            if f"input_blocks.{index}.0.op.weight" in state_dict:
                channel_mult.append(level_channels // model_channels)
                num_res_blocks.append(res_blocks_in_level)
                attention_levels.append(attention_in_level)
                res_blocks_in_level, attention_in_level = 0, False
            else:
                level_channels = state_dict[f"input_blocks.{index}.0.in_layers.2.weight"].shape[0]
                res_blocks_in_level += 1
                attention_in_level |= f"input_blocks.{index}.1.qkv.weight" in state_dict
            index += 1
        channel_mult.append(level_channels // model_channels)
        num_res_blocks.append(res_blocks_in_level)
        attention_levels.append(attention_in_level)
        return cls(
            model_channels=model_channels,
            channel_mult=tuple(channel_mult),
            num_res_blocks=tuple(num_res_blocks),
            attention_levels=tuple(attention_levels),
            in_channels=state_dict["input_blocks.0.0.weight"].shape[1],
            out_channels=state_dict["out.2.weight"].shape[0],
        )

    def forward_bytes(self, batch: int, height: int, width: int, element_size: int = 4,
                      attention_maps: bool = True) -> int:
        """About the most memory one forward pass holds at (batch, height, width): every skip
        connection the decoder keeps, plus the working tensors of the largest output block (its
        concatenated input, two feature maps and the residual), or of the largest attention when
        `attention_maps`: PyTorch's math kernel for scaled_dot_product_attention (the one the CPU
        runs here) holds each head's token x token scores and their softmax; the memory-efficient
        CUDA kernels hold neither."""
        def pixels_at(level: int) -> int:
            return batch * math.ceil(height / 2 ** level) * math.ceil(width / 2 ** level)

        widths = [mult * self.model_channels for mult in self.channel_mult]
        last = len(widths) - 1
        skip_elements = widths[0] * pixels_at(0)
        largest_block = 0
        for level, channels in enumerate(widths):
            skip_elements += self.num_res_blocks[level] * channels * pixels_at(level)
            if level < last:
                skip_elements += channels * pixels_at(level + 1)
            largest_block = max(largest_block, 5 * channels * pixels_at(level))
            if attention_maps and (self.attention_levels[level] or level == last):
                tokens = pixels_at(level) // batch
                largest_block = max(largest_block, 2 * batch * max(channels // HEAD_CHANNELS, 1) * tokens ** 2)
        return (skip_elements + largest_block) * element_size


class GroupNorm32(nn.GroupNorm):
    """GroupNorm over 32 groups, computed in float32 whatever the activations' and weights' dtype."""

    def __init__(self, channels: int):
        super().__init__(32, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x.float(), self.num_groups, self.weight.float(), self.bias.float(),
                            self.eps).type(x.dtype)


class Operations(Protocol):
    """The weighted layers a FaceUNet is made of: torch.nn's, or subclasses with the same parameters
    and forward; GroupNorm32 is built from the channel count alone and normalises 32 groups in float32."""
    Conv1d: type[nn.Conv1d]
    Conv2d: type[nn.Conv2d]
    Linear: type[nn.Linear]
    GroupNorm32: type[nn.GroupNorm]


class TorchOperations:
    Conv1d = nn.Conv1d
    Conv2d = nn.Conv2d
    Linear = nn.Linear
    GroupNorm32 = GroupNorm32


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps: [cos | sin] halves."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32,
                                                           device=timesteps.device) / half)
    args = timesteps.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class ResBlock(nn.Module):
    """Residual block with scale-shift (FiLM) timestep conditioning."""

    def __init__(self, channels: int, emb_channels: int, out_channels: int,
                 ops: type[Operations] = TorchOperations):
        super().__init__()
        self.in_layers = nn.Sequential(ops.GroupNorm32(channels), nn.SiLU(),
                                       ops.Conv2d(channels, out_channels, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), ops.Linear(emb_channels, 2 * out_channels))
        self.out_layers = nn.Sequential(ops.GroupNorm32(out_channels), nn.SiLU(), nn.Dropout(0.0),
                                        ops.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip_connection = (nn.Identity() if out_channels == channels
                                else ops.Conv2d(channels, out_channels, 1))

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x)
        scale, shift = self.emb_layers(emb).type(h.dtype)[..., None, None].chunk(2, dim=1)
        h = self.out_layers[0](h) * (1 + scale) + shift
        h = self.out_layers[1:](h)
        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    """Spatial self-attention; heads are split before q/k/v (guided-diffusion's legacy order)."""

    def __init__(self, channels: int, ops: type[Operations] = TorchOperations):
        super().__init__()
        self.num_heads = max(channels // HEAD_CHANNELS, 1)
        self.norm = ops.GroupNorm32(channels)
        self.qkv = ops.Conv1d(channels, 3 * channels, 1)
        self.proj_out = ops.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, height, width = x.shape
        flat = x.reshape(b, c, height * width)
        qkv = self.qkv(self.norm(flat)).reshape(b, self.num_heads, 3 * c // self.num_heads, -1)
        q, k, v = qkv.transpose(2, 3).chunk(3, dim=3)
        attended = F.scaled_dot_product_attention(q, k, v)
        h = self.proj_out(attended.transpose(2, 3).reshape(b, c, -1))
        return (flat + h).reshape(b, c, height, width)


class Downsample(nn.Module):
    def __init__(self, channels: int, ops: type[Operations] = TorchOperations):
        super().__init__()
        self.op = ops.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, channels: int, ops: type[Operations] = TorchOperations):
        super().__init__()
        self.conv = ops.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class TimestepEmbedSequential(nn.Sequential):
    """A sequence of layers where residual blocks also receive the timestep embedding."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class FaceUNet(nn.Module):
    """eps + learned-variance UNet: maps (x_t, t) to 6 channels (eps, variance interpolation v)."""

    def __init__(self, config: FaceUNetConfig, operations: type[Operations] = TorchOperations):
        super().__init__()
        self.config = config
        ops = operations
        mc = config.model_channels
        emb_channels = 4 * mc
        self.time_embed = nn.Sequential(ops.Linear(mc, emb_channels), nn.SiLU(),
                                        ops.Linear(emb_channels, emb_channels))

        ch = config.channel_mult[0] * mc
        self.input_blocks = nn.ModuleList(
            [TimestepEmbedSequential(ops.Conv2d(config.in_channels, ch, 3, padding=1))])
        skip_channels = [ch]
        last_level = len(config.channel_mult) - 1
        for level, mult in enumerate(config.channel_mult):
            for _ in range(config.num_res_blocks[level]):
                layers: list[nn.Module] = [ResBlock(ch, emb_channels, mult * mc, ops)]
                ch = mult * mc
                if config.attention_levels[level]:
                    layers.append(AttentionBlock(ch, ops))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                skip_channels.append(ch)
            if level != last_level:
                self.input_blocks.append(TimestepEmbedSequential(Downsample(ch, ops)))
                skip_channels.append(ch)

        self.middle_block = TimestepEmbedSequential(
            ResBlock(ch, emb_channels, ch, ops), AttentionBlock(ch, ops), ResBlock(ch, emb_channels, ch, ops))

        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(config.channel_mult))):
            for i in range(config.num_res_blocks[level] + 1):
                layers = [ResBlock(ch + skip_channels.pop(), emb_channels, mult * mc, ops)]
                ch = mult * mc
                if config.attention_levels[level]:
                    layers.append(AttentionBlock(ch, ops))
                if level and i == config.num_res_blocks[level]:
                    layers.append(Upsample(ch, ops))
                self.output_blocks.append(TimestepEmbedSequential(*layers))

        self.out = nn.Sequential(ops.GroupNorm32(ch), nn.SiLU(),
                                 ops.Conv2d(ch, config.out_channels, 3, padding=1))

    @property
    def downsampling_factor(self) -> int:
        """Height and width of an input must be multiples of this."""
        return 2 ** (len(self.config.channel_mult) - 1)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        emb = self.time_embed(timestep_embedding(timesteps, self.config.model_channels).to(x.dtype))
        skips = []
        h = x
        for block in self.input_blocks:
            h = block(h, emb)
            skips.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            # Two statements, so that the previous h is freed before the block runs.
            h = torch.cat([h, skips.pop()], dim=1)
            h = block(h, emb)
        return self.out(h)


Network = TypeVar("Network", bound=FaceUNet)


def build(state_dict: dict[str, torch.Tensor], network_class: type[Network] = FaceUNet) -> Network:
    """The face UNet a checkpoint describes (or a subclass of it), its tensors taken as they are,
    float32, in eval mode. Refuses a text-conditioned UNet of the Stable Diffusion kind, whose
    names look alike, with the loaders that read it."""
    cross_attention = [key for key in state_dict if ".transformer_blocks." in key]
    if cross_attention:
        raise ValueError(
            f"it holds a text-conditioned UNet of the Stable Diffusion kind ({cross_attention[0]}, ...), not the "
            "unconditional face DDPM: load it with ComfyUI's Load Checkpoint or Load Diffusion Model and connect "
            "its MODEL (and VAE) to the SSDiff nodes instead")
    config = FaceUNetConfig.from_state_dict(state_dict)
    with torch.device("meta"):
        network = network_class(config)
    try:
        result = network.load_state_dict(state_dict, strict=False, assign=True)
    except RuntimeError as error:
        mismatches = [line.strip() for line in str(error).splitlines() if line.strip().startswith("size mismatch")]
        raise ValueError(f"its tensors do not fit the face UNet their names describe ({config}): "
                         f"{'; '.join(mismatches[:3]) or error}") from error
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"the checkpoint does not match the face UNet it describes ({config}): "
            f"missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}")
    return network.float().eval()
