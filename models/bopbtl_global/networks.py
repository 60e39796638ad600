"""The networks of BOPBTL's global restoration (stage 1 of "Bringing Old Photos Back to Life"),
with the module names of the released checkpoints, so their state dicts load strictly:

    VAE_A's encoder   `latest_net_G.pth` of VAE_A_quality, keys `encoder.*`
    VAE_B's decoder   `latest_net_G.pth` of VAE_B_quality or VAE_B_scratch, keys `decoder.*`
    quality mapping   `latest_net_mapping_net.pth` of mapping_quality, keys `model.*`
    scratch mapping   ... of mapping_scratch, keys `before_NL.*`, `NL.*`, `after_NL.*`
    HR mapping        ... of mapping_Patch_Attention, keys `before_NL.*`, `NL_scale_{1,2,3}.*`,
                      `res_block_{1,2}.*`, `after_NL.*`

Sources (microsoft/Bringing-Old-Photos-Back-to-Life @ 33875ec, `Global/`): `models/networks.py`
(GlobalGenerator_DCDCv2 82-291, ResnetBlock 295-339, NonLocalBlock2D_with_mask_Res 401-523,
Patch_Attention_4 621-776), `models/mapping_model.py` (Mapping_Model 18-57, inference 325-346),
`models/NonLocal_feature_mapping_model.py` (Mapping_Model_with_mask 17-79, Mapping_Model_with_mask_2
81-201), with the options of `test.py:59-92` (n_downsample_global 3, mc 64, k_size 4, start_r 1,
mapping_n_block 6, map_mc 512, spatio_size 64, feat_dim -1, mapping_net_dilation 1; scratch:
NL_res, NL_use_mask, correlation_renormalize, NL_fusion_method "combine", softmax_temperature 1,
use_self and cosin_similarity off; HR: mapping_exp 1, inference_optimize).

Every normalisation is InstanceNorm2d without affine parameters or running statistics, so the
networks hold no buffers. `use_SN` (set by test.py for scratch mode) reaches only the discriminator
(networks.py:576-595): none of these networks has spectral norm. Weight-less layers keep their
positions inside each `nn.Sequential` so the indices in the keys line up.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from .attention import (DEFAULT_CHUNK_BYTES, dense_masked_attention, feature_holes, feature_validity,
                        masked_attention, patch_match)

Mode = Literal["quality", "scratch", "scratch_hr"]
MODES: tuple[Mode, ...] = ("quality", "scratch", "scratch_hr")
LATENT_CHANNELS = 64
"""Width of the VAEs (ngf 64 capped by mc 64) and so of the latent, at 1/4 of the image size."""
MAPPING_CHANNELS = 512
"""map_mc: width of the mappings between their first and last convolutions."""
MAPPING_BLOCKS = 6
"""mapping_n_block: residual blocks of the quality and scratch mappings (the HR one ignores it)."""
HR_PATCHES = (8, 4, 2)
"""Patch sizes of the HR mapping's three patch attentions (NonLocal_feature_mapping_model.py:114-150)."""
SCALE = 4
"""Image pixels per latent position along each side: the VAEs' two stride-2 convolutions."""


class ResnetBlock(nn.Module):
    """networks.py:295-339 with reflection padding and dilation 1: x + (reflect-pad 1, 3x3 conv, IN,
    ReLU, reflect-pad 1, 3x3 conv, IN); keys `conv_block.1.*` and `conv_block.5.*`."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


def _conv_norm_relu(in_channels: int, out_channels: int, **conv: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, **conv), nn.InstanceNorm2d(out_channels), nn.ReLU(True)]


def _mapping_head(channels: int) -> list[nn.Module]:
    """The mappings' first layers: four 3x3 zero-padded convs 64 -> 128 -> 256 -> 512 -> 512 (each
    width capped by `channels`), each with IN and ReLU (mapping_model.py:30-33)."""
    layers: list[nn.Module] = []
    for level in range(4):
        layers += _conv_norm_relu(min(LATENT_CHANNELS * 2 ** level, channels),
                                  min(LATENT_CHANNELS * 2 ** (level + 1), channels), kernel_size=3, padding=1)
    return layers


def _mapping_tail(channels: int) -> list[nn.Module]:
    """The mappings' last layers: 3x3 convs 512 -> 512 -> 256 -> 128 with IN and ReLU, then a plain
    3x3 conv 128 -> 64 (mapping_model.py:46-50)."""
    layers: list[nn.Module] = []
    for level in range(3):
        layers += _conv_norm_relu(min(LATENT_CHANNELS * 2 ** (4 - level), channels),
                                  min(LATENT_CHANNELS * 2 ** (3 - level), channels), kernel_size=3, padding=1)
    return layers + [nn.Conv2d(LATENT_CHANNELS * 2, LATENT_CHANNELS, 3, padding=1)]


class VAEEncoder(nn.Module):
    """The encoder half of GlobalGenerator_DCDCv2 (networks.py:97-184) as built for the released
    VAEs: reflect-pad 3, 7x7 conv 3 -> 64, IN, ReLU (`encoder.1`); two 4x4 stride-2 convs 64 -> 64
    with IN and ReLU (`encoder.4`, `encoder.7`); four ResnetBlocks (`encoder.10` - `encoder.13`).
    B x 3 x H x W in [-1, 1] to B x 64 x H/4 x W/4 (H, W multiples of 4)."""

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3)]
        layers += _conv_norm_relu(3, LATENT_CHANNELS, kernel_size=7)
        for _ in range(2):
            layers += _conv_norm_relu(LATENT_CHANNELS, LATENT_CHANNELS, kernel_size=4, stride=2, padding=1)
        layers += [ResnetBlock(LATENT_CHANNELS) for _ in range(4)]
        self.encoder = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)


class VAEDecoder(nn.Module):
    """The decoder half of GlobalGenerator_DCDCv2 (networks.py:186-281): four ResnetBlocks
    (`decoder.0` - `decoder.3`); two 4x4 stride-2 transposed convs 64 -> 64 with IN and ReLU
    (`decoder.4`, `decoder.7`); reflect-pad 3, 7x7 conv 64 -> 3 (`decoder.11`), tanh.
    B x 64 x h x w to B x 3 x 4h x 4w in [-1, 1]."""

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = [ResnetBlock(LATENT_CHANNELS) for _ in range(4)]
        for _ in range(2):
            layers += [nn.ConvTranspose2d(LATENT_CHANNELS, LATENT_CHANNELS, 4, stride=2, padding=1),
                       nn.InstanceNorm2d(LATENT_CHANNELS), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(LATENT_CHANNELS, 3, 7), nn.Tanh()]
        self.decoder = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(x)


class QualityMapping(nn.Module):
    """Mapping_Model (mapping_model.py:18-57): the latent of a photo without scratches to that of a
    clean one, all in `model`: head (`model.0/3/6/9`), six ResnetBlocks(512) (`model.12` -
    `model.17`), tail (`model.18/21/24`, `model.27`). B x 64 x h x w to the same."""

    mode: Mode = "quality"

    def __init__(self, channels: int = MAPPING_CHANNELS, blocks: int = MAPPING_BLOCKS):
        super().__init__()
        self.model = nn.Sequential(*_mapping_head(channels), *[ResnetBlock(channels) for _ in range(blocks)],
                                   *_mapping_tail(channels))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.model(features)


class MaskedNonLocalBlock(nn.Module):
    """NonLocalBlock2D_with_mask_Res(512, 512, "combine", re_norm=True, temperature=1,
    use_self=False, cosin=False) (networks.py:401-523): 1x1 convs `theta`, `phi`, `g` (512 -> 512)
    give queries, keys and values; the masked attention (`attention.masked_attention`) attends every
    position to the intact ones; `W` (1x1) and three ResnetBlocks (`res_block.0-2`) follow; intact
    positions keep x, holes take the result."""

    def __init__(self, channels: int = MAPPING_CHANNELS):
        super().__init__()
        self.channels = channels
        self.g = nn.Conv2d(channels, channels, 1)
        self.W = nn.Conv2d(channels, channels, 1)
        self.theta = nn.Conv2d(channels, channels, 1)
        self.phi = nn.Conv2d(channels, channels, 1)
        self.res_block = nn.Sequential(*[ResnetBlock(channels) for _ in range(3)])

    def forward(self, x: torch.Tensor, mask: torch.Tensor, *, chunk: int | None = None,
                chunk_bytes: int = DEFAULT_CHUNK_BYTES, dense: bool = False) -> torch.Tensor:
        """x: B x C x h x w; mask: B x 1 x H x W at image size, 1 = damaged. `chunk` query rows at a
        time (automatic from `chunk_bytes` when None), or the released N x N form with `dense`."""
        valid = feature_validity(mask.to(x.dtype), x.shape[2:])
        theta, phi, g = self.theta(x), self.phi(x), self.g(x)
        if dense:
            y = dense_masked_attention(theta, phi, g, valid)
        else:
            y = masked_attention(theta, phi, g, valid, chunk=chunk, chunk_bytes=chunk_bytes)
        del theta, phi, g
        attended = self.res_block(self.W(y))
        del y
        return valid * x + (1 - valid) * attended


class ScratchMapping(nn.Module):
    """Mapping_Model_with_mask (NonLocal_feature_mapping_model.py:17-79): `before_NL` (the head,
    `before_NL.0/3/6/9`), `NL` (MaskedNonLocalBlock), `after_NL` (six ResnetBlocks `after_NL.0-5`,
    then the tail `after_NL.6/9/12`, `after_NL.15`). B x 64 x h x w and a B x 1 x 4h x 4w mask to
    B x 64 x h x w."""

    mode: Mode = "scratch"

    def __init__(self, channels: int = MAPPING_CHANNELS, blocks: int = MAPPING_BLOCKS):
        super().__init__()
        self.before_NL = nn.Sequential(*_mapping_head(channels))
        self.NL = MaskedNonLocalBlock(channels)
        self.after_NL = nn.Sequential(*[ResnetBlock(channels) for _ in range(blocks)], *_mapping_tail(channels))

    def forward(self, features: torch.Tensor, mask: torch.Tensor, *, chunk: int | None = None,
                chunk_bytes: int = DEFAULT_CHUNK_BYTES, dense: bool = False) -> torch.Tensor:
        x = self.before_NL(features)
        x = self.NL(x, mask, chunk=chunk, chunk_bytes=chunk_bytes, dense=dense)
        return self.after_NL(x)


class PatchAttention(nn.Module):
    """Patch_Attention_4 (networks.py:621-776) through its inference_forward: x = ResnetBlock(z)
    (`res_block.0`); patch matching over x (`attention.patch_match`) with the bilinear hole map;
    `F_Combine`, a 3x3 conv 1025 -> 512 of concat(z, composed, holes). Its g/theta/phi/W are
    commented out upstream and absent from the checkpoint."""

    def __init__(self, patch: int, channels: int = MAPPING_CHANNELS):
        super().__init__()
        self.patch = patch
        self.F_Combine = nn.Conv2d(2 * channels + 1, channels, 3, padding=1)
        self.res_block = nn.Sequential(ResnetBlock(channels))

    def forward(self, z: torch.Tensor, mask: torch.Tensor, *, chunk: int | None = None,
                chunk_bytes: int = DEFAULT_CHUNK_BYTES, dense: bool = False) -> torch.Tensor:
        x = self.res_block(z)
        holes = feature_holes(mask.to(x.dtype), x.shape[2:])
        composed = patch_match(x, holes, self.patch, chunk=chunk, chunk_bytes=chunk_bytes, dense=dense)
        del x
        return self.F_Combine(torch.cat((z, composed, holes), dim=1))


class PatchAttentionMapping(nn.Module):
    """Mapping_Model_with_mask_2 (NonLocal_feature_mapping_model.py:81-201) through inference_forward:
    `before_NL` (the head and ResnetBlocks `before_NL.12-13`), `NL_scale_1` (patch 8), `res_block_1`
    (two ResnetBlocks), `NL_scale_2` (patch 4), `res_block_2`, `NL_scale_3` (patch 2), `after_NL`
    (ResnetBlocks `after_NL.0-1`, tail `after_NL.2/5/8`, `after_NL.11`). F_Combine's 1025 input
    channels fix the width at 512."""

    mode: Mode = "scratch_hr"

    def __init__(self):
        super().__init__()
        channels = MAPPING_CHANNELS
        self.before_NL = nn.Sequential(*_mapping_head(channels), ResnetBlock(channels), ResnetBlock(channels))
        self.NL_scale_1 = PatchAttention(HR_PATCHES[0], channels)
        self.res_block_1 = nn.Sequential(ResnetBlock(channels), ResnetBlock(channels))
        self.NL_scale_2 = PatchAttention(HR_PATCHES[1], channels)
        self.res_block_2 = nn.Sequential(ResnetBlock(channels), ResnetBlock(channels))
        self.NL_scale_3 = PatchAttention(HR_PATCHES[2], channels)
        self.after_NL = nn.Sequential(ResnetBlock(channels), ResnetBlock(channels), *_mapping_tail(channels))

    def forward(self, features: torch.Tensor, mask: torch.Tensor, *, chunk: int | None = None,
                chunk_bytes: int = DEFAULT_CHUNK_BYTES, dense: bool = False) -> torch.Tensor:
        options = dict(chunk=chunk, chunk_bytes=chunk_bytes, dense=dense)
        x = self.before_NL(features)
        x = self.NL_scale_1(x, mask, **options)
        x = self.res_block_1(x)
        x = self.NL_scale_2(x, mask, **options)
        x = self.res_block_2(x)
        x = self.NL_scale_3(x, mask, **options)
        return self.after_NL(x)


Mapping = QualityMapping | ScratchMapping | PatchAttentionMapping
