"""CAP-VSTNet: the reversible network's layout matches the published `photo_image.pt`, it inverts
exactly, checkpoints load strictly through `from_state_dict`, and the cWCT colour transfer keeps
what it must keep."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from comfyui_ssdiff.models.cap_vstnet import RevResNet, RevResNetConfig
from comfyui_ssdiff.models.cap_vstnet.revresnet import squeeze2, unsqueeze2
from comfyui_ssdiff.priors.cap_vstnet_transfer import CapVstnetTransfer, cwct_transfer
from comfyui_ssdiff.ssdiff_core.variant import RELEASED_CODE

TINY = RevResNetConfig(blocks=(1, 1, 1), strides=(1, 2, 2), channels=(4, 16, 64), mult=2,
                       hidden_dim=8, sp_steps=2)
"""Smallest widths: exercises both zero pads (3 -> 8 channels, 64 -> 128 per half) and mult 2."""
NARROW_PHOTO = RevResNetConfig(blocks=(1, 2, 1), strides=(1, 2, 2), channels=(16, 64, 256))
"""The photorealistic widths with fewer blocks."""


def tiny_network(config: RevResNetConfig, seed: int = 0) -> RevResNet:
    torch.manual_seed(seed)
    network = RevResNet(config)
    with torch.no_grad():
        for name, parameter in network.named_parameters():
            if name.endswith("bias"):  # upstream starts them at zero; make them count here
                parameter.normal_(0, 0.02)
    return network.eval().requires_grad_(False)


def assert_same_tensors(network: RevResNet, state_dict: dict[str, torch.Tensor]) -> None:
    loaded = network.state_dict()
    assert loaded.keys() == state_dict.keys()
    for key, value in state_dict.items():
        assert torch.equal(loaded[key], value), key


# --- the network ---------------------------------------------------------------------------------

def test_photorealistic_layout_matches_the_published_checkpoint():
    """Names and shapes as upstream's models/RevResNet.py builds them (checked against it)."""
    with torch.device("meta"):
        network = RevResNet(RevResNetConfig.photorealistic())
    state_dict = network.state_dict()
    assert sum(p.numel() for p in network.parameters()) == 4_089_936
    assert len(state_dict) == 192  # 30 stack + 2 reduction blocks, 3 convs each, weight + bias
    assert list(network.buffers()) == []
    assert state_dict.keys() == dict(network.named_parameters()).keys()
    assert state_dict["stack.0.conv.1.weight"].shape == (4, 16, 3, 3)
    assert state_dict["stack.10.conv.1.weight"].shape == (16, 16, 3, 3)   # stride 2, 16 -> 64
    assert state_dict["stack.20.conv.1.weight"].shape == (64, 64, 3, 3)   # stride 2, 64 -> 256
    assert state_dict["stack.29.conv.7.weight"].shape == (256, 64, 3, 3)
    assert state_dict["channel_reduction.block_list.1.conv.7.bias"].shape == (256,)
    assert "stack.30.conv.1.weight" not in state_dict
    assert "channel_reduction.block_list.2.conv.1.weight" not in state_dict
    assert RevResNetConfig.from_state_dict(state_dict) == RevResNetConfig.photorealistic()
    assert RevResNetConfig.from_state_dict(state_dict, sp_steps=1) == RevResNetConfig.artistic()
    # 32 feature channels at the image's own resolution (down by 4, spread up by 4)
    assert network(torch.empty(1, 3, 64, 48, device="meta")).shape == (1, 32, 64, 48)
    assert network.down_scale == 4 and network.min_side == 8


@pytest.mark.parametrize("config", [TINY, NARROW_PHOTO], ids=["tiny", "narrow-photo"])
def test_tiny_networks_load_strictly_from_pt_and_safetensors(config, tmp_path):
    state_dict = tiny_network(config).state_dict()
    torch.save({"state_dict": state_dict}, tmp_path / "photo_image.pt")
    save_file(state_dict, str(tmp_path / "photo_image.safetensors"))

    from_pt = torch.load(tmp_path / "photo_image.pt", weights_only=True)["state_dict"]
    assert RevResNetConfig.from_state_dict(from_pt) == config
    network = RevResNet(RevResNetConfig.from_state_dict(from_pt))
    network.load_state_dict(from_pt, strict=True)
    assert_same_tensors(network, state_dict)

    from_safetensors = load_file(str(tmp_path / "photo_image.safetensors"))
    network = RevResNet.from_state_dict(from_safetensors)
    assert network.config == config and not network.training
    assert not any(p.requires_grad for p in network.parameters())
    assert_same_tensors(network, state_dict)


@pytest.mark.parametrize("config", [TINY, NARROW_PHOTO], ids=["tiny", "narrow-photo"])
def test_inverse_undoes_forward(config):
    network = tiny_network(config, seed=1)
    image = torch.rand(2, 3, 16, 12, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        features = network(image, forward=True)
        assert features.shape == (2, 2 * config.hidden_dim, 16, 12)
        restored = network(features, forward=False)
    assert restored.shape == image.shape
    assert (restored - image).abs().max() < 1e-4


def test_space_to_depth_keeps_upstreams_channel_order():
    """The trained weights expect channel (2 * dy + dx) * C + c for offset (dy, dx), channel c."""
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).reshape(2, 3, 4, 6)
    squeezed = squeeze2(x)
    for dy in range(2):
        for dx in range(2):
            for c in range(3):
                assert torch.equal(squeezed[:, (2 * dy + dx) * 3 + c], x[:, c, dy::2, dx::2])
    assert torch.equal(unsqueeze2(squeezed), x)


def test_a_checkpoint_of_another_architecture_is_refused():
    with pytest.raises(ValueError, match="missing marker keys.*stack.0.conv.1.weight"):
        RevResNetConfig.from_state_dict({"time_embed.0.weight": torch.zeros(128, 32)})
    with pytest.raises(ValueError, match="channel_reduction.block_list.0.conv.1.weight"):
        RevResNetConfig.from_state_dict({"stack.0.conv.1.weight": torch.zeros(1, 4, 3, 3)})
    state_dict = tiny_network(TINY).state_dict()
    with pytest.raises(ValueError, match="missing stack.1.conv.4.weight"):
        RevResNetConfig.from_state_dict(
            {k: v for k, v in state_dict.items() if k != "stack.1.conv.4.weight"})
    with pytest.raises(ValueError, match="does not match"):
        RevResNet.from_state_dict({**state_dict, "stack.0.extra": torch.zeros(1)})


# --- cWCT ----------------------------------------------------------------------------------------

def random_features(batch: int, channels: int, height: int, width: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    mixing = torch.randn(channels, channels, generator=generator)
    raw = torch.randn(batch, channels, height * width, generator=generator)
    shift = torch.randn(batch, channels, 1, generator=generator)
    return (mixing @ raw + shift).reshape(batch, channels, height, width)


def covariance(features: torch.Tensor) -> torch.Tensor:
    flat = features.reshape(features.shape[0], -1).double()
    centred = flat - flat.mean(dim=1, keepdim=True)
    return centred @ centred.T / (flat.shape[1] - 1)


def test_cwct_with_identical_content_and_style_returns_the_content():
    content = random_features(2, 8, 12, 10, seed=0)
    assert torch.allclose(cwct_transfer(content, content.clone()), content, atol=1e-5, rtol=0)


def test_cwct_gives_the_content_the_style_covariance_and_mean():
    content = random_features(2, 8, 12, 10, seed=1)
    style = random_features(2, 8, 9, 7, seed=2) * 3
    out = cwct_transfer(content, style)
    assert out.shape == content.shape and out.dtype == content.dtype
    for index in range(2):
        target = covariance(style[index])
        assert torch.allclose(covariance(out[index]), target, atol=1e-4 * target.abs().max())
        assert torch.allclose(out[index].mean(dim=(1, 2)), style[index].mean(dim=(1, 2)),
                              atol=1e-4)


def test_cwct_in_a_region_leaves_the_rest_untouched():
    content = random_features(2, 6, 12, 10, seed=3)
    style = random_features(2, 6, 12, 10, seed=4) * 2
    generator = torch.Generator().manual_seed(5)
    content_region = torch.rand(2, 1, 12, 10, generator=generator) > 0.4
    style_region = torch.rand(2, 1, 12, 10, generator=generator) > 0.6
    content_region[1] = False  # nothing to transfer in the second image
    out = cwct_transfer(content, style, content_region, style_region)

    outside = ~content_region.expand_as(content)
    assert torch.equal(out[outside], content[outside])
    assert torch.equal(out[1], content[1])
    inside_out = out[0][:, content_region[0, 0]]
    inside_style = style[0][:, style_region[0, 0]]
    assert torch.allclose(covariance(inside_out), covariance(inside_style), atol=1e-3)
    assert torch.allclose(inside_out.mean(dim=1), inside_style.mean(dim=1), atol=1e-4)


def test_cwct_survives_a_singular_covariance():
    content = random_features(1, 6, 8, 8, seed=6)
    style = random_features(1, 6, 8, 8, seed=7)
    style[:, 5] = style[:, 4]  # rank-deficient: Cholesky needs the eps loop
    out = cwct_transfer(content, style)
    assert torch.isfinite(out).all()
    assert torch.allclose(covariance(out[0]), covariance(style[0]), atol=1e-3)


# --- the colour-transfer function ----------------------------------------------------------------

def images(batch: int, height: int, width: int, seed: int) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    content = torch.rand(batch, 3, height, width, generator=generator) * 2 - 1
    style = (torch.rand(batch, 3, height, width, generator=generator) * 0.5
             + torch.tensor([0.4, -0.3, -0.6])[:, None, None]).clamp(-1, 1)
    region = torch.zeros(batch, 1, height, width, dtype=torch.bool)
    region[..., 4:-5, 3:-4] = True
    return content, style, region


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_transfer_keeps_size_range_and_outside_pixels(mode):
    transfer = CapVstnetTransfer(tiny_network(TINY, seed=3))
    content, style, region = images(1, 30, 22, seed=4)
    context = torch.inference_mode() if mode == "inference_mode" else torch.enable_grad()
    with context:
        out = transfer(content, style, region)
    assert out.shape == content.shape and out.dtype == content.dtype
    assert out.min() >= -1 and out.max() <= 1
    assert torch.equal(out[~region.expand_as(out)], content[~region.expand_as(content)])
    inside = region.expand_as(out)
    assert (out[inside] - content[inside]).abs().max() > 1e-2
    # recoloured towards the style: the region's channel means move towards the style's
    def means(image):
        return image[inside].reshape(3, -1).mean(dim=1)
    assert (means(out) - means(style)).abs().sum() < (means(content) - means(style)).abs().sum()


def test_transfer_of_an_image_onto_itself_changes_nothing():
    transfer = CapVstnetTransfer(tiny_network(TINY, seed=5))
    content, _, region = images(2, 13, 17, seed=6)
    region[:] = True
    out = transfer(content, content.clone(), region)
    assert torch.allclose(out, content, atol=1e-3, rtol=0)


def test_transfer_handles_inference_tensors_a_style_batch_of_one_and_tiny_images():
    with torch.inference_mode():  # as ComfyUI loads models and makes images
        state_dict = {k: v.clone() for k, v in tiny_network(TINY, seed=7).state_dict().items()}
        content, style, region = images(2, 12, 9, seed=8)
    transfer = CapVstnetTransfer(RevResNet.from_state_dict(state_dict))
    out = transfer(content, style[:1], region)
    assert out.shape == content.shape
    assert torch.equal(out[~region.expand_as(out)], content[~region.expand_as(content)])
    small = torch.zeros(1, 3, 5, 3)
    assert transfer(small, small, torch.ones(1, 1, 5, 3, dtype=torch.bool)).shape == small.shape
    with pytest.raises(ValueError, match="boolean"):
        transfer(content, style, region.float())


def test_released_code_form_feeds_the_network_raw_and_keeps_its_output_unclamped():
    network = tiny_network(TINY, seed=9)
    content, style, _ = images(1, 16, 16, seed=10)
    region = torch.ones(1, 1, 16, 16, dtype=torch.bool)
    with torch.no_grad():  # run_style_transfer_tensor: the [-1, 1] tensors in, the output as it comes
        expected = network(cwct_transfer(network(content, forward=True), network(style, forward=True),
                                         eps=2e-5), forward=False)
    assert expected.abs().max() > 1, "the check needs an output beyond [-1, 1], which a clamp would change"
    released = CapVstnetTransfer(network).for_variant(RELEASED_CODE)
    torch.testing.assert_close(released(content, style, region), expected, rtol=0, atol=1e-5)
    trained_range = CapVstnetTransfer(network)(content, style, region)
    assert trained_range.min() >= -1 and trained_range.max() <= 1
    assert (trained_range - expected).abs().max() > 0.1
