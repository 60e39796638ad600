"""The face UNet's layout matches the published FFHQ-512 checkpoint, built on the meta device."""
from __future__ import annotations

import torch

from comfyui_ssdiff.models.guided_diffusion import FaceUNet, FaceUNetConfig
from comfyui_ssdiff.models.guided_diffusion.unet import AttentionBlock


def meta_ffhq512() -> FaceUNet:
    with torch.device("meta"):
        return FaceUNet(FaceUNetConfig.ffhq512())


def test_ffhq512_has_the_published_parameter_count_and_output():
    network = meta_ffhq512()
    assert sum(p.numel() for p in network.parameters()) == 159_788_454
    assert network.out[2].weight.shape == (6, 32, 3, 3)
    assert network.downsampling_factor == 64


def test_config_is_read_back_from_the_checkpoint_shapes():
    state_dict = meta_ffhq512().state_dict()
    assert FaceUNetConfig.from_state_dict(state_dict) == FaceUNetConfig.ffhq512()


def test_attention_sits_where_the_feature_map_is_32_16_and_8_px_wide():
    network = meta_ffhq512()
    size, widths = 512, set()
    for block in network.input_blocks[1:]:
        if hasattr(block[0], "op"):
            size //= 2
        elif any(isinstance(layer, AttentionBlock) for layer in block):
            widths.add(size)
    assert widths == {32, 16, 8}
    heads = {block[1].num_heads for block in network.input_blocks[1:] if len(block) > 1}
    assert heads == {256 // 64, 512 // 64}
    assert isinstance(network.middle_block[1], AttentionBlock)


def test_a_narrow_layer_gets_one_head():
    assert AttentionBlock(32).num_heads == 1

