"""BOPBTL's global restoration: the released networks' layouts, files saved as in
global_checkpoints.zip and loaded strictly, and the whole pipeline of each mode against an
independent forward written here from the released code (microsoft/Bringing-Old-Photos-Back-to-Life
@ 33875ec, `Global/`): plain functional ops over the state dicts, the dense N x N non-local block,
PIL / cv2 / torchvision pre- and post-processing as test.py does it. Random full-size networks
(the released widths are fixed by the checkpoints), small photos."""
from __future__ import annotations

import math
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
import torchvision.utils as vutils
from PIL import Image

from harness.tiny_models import (BOPBTL_DECODER_FOLDERS, BOPBTL_MAPPING_FOLDERS, random_network, randomised,
                                  save_bopbtl_restoration)

from comfyui_ssdiff.models.bopbtl_global import (GlobalRestorationNetworks, MaskedNonLocalBlock, PatchAttentionMapping,
                                                 QualityMapping, ScratchMapping, VAEDecoder, VAEEncoder,
                                                 attention_chunk, build, build_decoder, build_encoder,
                                                 build_mapping, dense_masked_attention, feature_holes, feature_validity,
                                                 masked_attention, patch_match)
from comfyui_ssdiff.models.bopbtl_global import DEFAULT_CHUNK_BYTES
from comfyui_ssdiff.priors.global_restoration import (dilate, network_output, postprocessed, processed_size,
                                                      restore_at_processed_size, restore_global, working_bytes)

MAPPING_FOLDERS = BOPBTL_MAPPING_FOLDERS
MAPPINGS = {"quality": QualityMapping, "scratch": ScratchMapping, "scratch_hr": PatchAttentionMapping}
DECODER_FOLDERS = BOPBTL_DECODER_FOLDERS


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> Path:
    """`checkpoints/restoration/...` as global_checkpoints.zip unpacks, random weights."""
    return save_bopbtl_restoration(tmp_path_factory.mktemp("bopbtl") / "checkpoints" / "restoration")


def read(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def state_dicts(checkpoints) -> dict[str, dict[str, dict[str, torch.Tensor]]]:
    """Per mode, the three files' state dicts: encoder, mapping, decoder."""
    return {mode: {"encoder": read(checkpoints / "VAE_A_quality" / "latest_net_G.pth"),
                   "mapping": read(checkpoints / MAPPING_FOLDERS[mode] / "latest_net_mapping_net.pth"),
                   "decoder": read(checkpoints / DECODER_FOLDERS[mode] / "latest_net_G.pth")}
            for mode in MAPPING_FOLDERS}


@pytest.fixture(scope="module")
def networks(state_dicts) -> dict[str, GlobalRestorationNetworks]:
    return {mode: build(files["encoder"], files["mapping"], files["decoder"]) for mode, files in state_dicts.items()}


# --- the released formulation, written out here ---------------------------------------------------

def conv(sd, name, x, stride=1, padding=0):
    return F.conv2d(x, sd[f"{name}.weight"], sd[f"{name}.bias"], stride=stride, padding=padding)


def norm_relu(x):
    return F.relu(F.instance_norm(x, eps=1e-5))


def reflect(x, pad):
    return F.pad(x, (pad,) * 4, mode="reflect")


def resnet_block(sd, name, x):
    """networks.py:295-339."""
    y = norm_relu(conv(sd, f"{name}.conv_block.1", reflect(x, 1)))
    y = F.instance_norm(conv(sd, f"{name}.conv_block.5", reflect(y, 1)), eps=1e-5)
    return x + y


def reference_encode(sd, x):
    """GlobalGenerator_DCDCv2(flow="enc") as test.py's options build it."""
    x = norm_relu(conv(sd, "encoder.1", reflect(x, 3)))
    x = norm_relu(conv(sd, "encoder.4", x, stride=2, padding=1))
    x = norm_relu(conv(sd, "encoder.7", x, stride=2, padding=1))
    for index in range(10, 14):
        x = resnet_block(sd, f"encoder.{index}", x)
    return x


def reference_decode(sd, x):
    for index in range(4):
        x = resnet_block(sd, f"decoder.{index}", x)
    for index in (4, 7):
        x = norm_relu(F.conv_transpose2d(x, sd[f"decoder.{index}.weight"], sd[f"decoder.{index}.bias"],
                                         stride=2, padding=1))
    return torch.tanh(conv(sd, "decoder.11", reflect(x, 3)))


def head(sd, prefix, x):
    for index in (0, 3, 6, 9):
        x = norm_relu(conv(sd, f"{prefix}.{index}", x, padding=1))
    return x


def tail(sd, prefix, first, x):
    for index in (first, first + 3, first + 6):
        x = norm_relu(conv(sd, f"{prefix}.{index}", x, padding=1))
    return conv(sd, f"{prefix}.{first + 9}", x, padding=1)


def reference_quality_mapping(sd, x):
    x = head(sd, "model", x)
    for index in range(12, 18):
        x = resnet_block(sd, f"model.{index}", x)
    return tail(sd, "model", 18, x)


def reference_non_local(sd, x, mask):
    """NonLocalBlock2D_with_mask_Res.forward (networks.py:460-523), renorm, "combine", T = 1."""
    batch, channels = x.shape[:2]
    g_x = conv(sd, "NL.g", x).view(batch, channels, -1).permute(0, 2, 1)
    theta_x = conv(sd, "NL.theta", x).view(batch, channels, -1).permute(0, 2, 1)
    phi_x = conv(sd, "NL.phi", x).view(batch, channels, -1)
    f = torch.matmul(theta_x, phi_x)
    f /= 1.0
    f_div_c = F.softmax(f, dim=2)
    tmp = 1 - mask
    mask = F.interpolate(mask, (x.size(2), x.size(3)), mode="bilinear", align_corners=False)
    mask[mask > 0] = 1.0
    mask = 1 - mask
    tmp = F.interpolate(tmp, (x.size(2), x.size(3)))
    mask *= tmp
    mask_expand = mask.view(batch, 1, -1).repeat(1, x.size(2) * x.size(3), 1)
    f_div_c = F.normalize(mask_expand * f_div_c, p=1, dim=2)
    y = torch.matmul(f_div_c, g_x).permute(0, 2, 1).contiguous().view(batch, channels, *x.shape[2:])
    w_y = conv(sd, "NL.W", y)
    for index in range(3):
        w_y = resnet_block(sd, f"NL.res_block.{index}", w_y)
    full_mask = mask.repeat(1, channels, 1, 1)
    return full_mask * x + (1 - full_mask) * w_y


def reference_scratch_mapping(sd, x, mask):
    x = reference_non_local(sd, head(sd, "before_NL", x), mask)
    for index in range(6):
        x = resnet_block(sd, f"after_NL.{index}", x)
    return tail(sd, "after_NL", 6, x)


def reference_patch_attention(sd, prefix, z, mask, patch):
    """Patch_Attention_4.inference_forward (networks.py:720-776)."""
    x = resnet_block(sd, f"{prefix}.res_block.0", z)
    h, w = x.shape[2:]
    mask = F.interpolate(mask, (h, w), mode="bilinear", align_corners=False)
    mask[mask > 0] = 1.0
    mask_unfold = F.unfold(mask, kernel_size=(patch, patch), padding=0, stride=patch)
    non_mask_region = (torch.mean(mask_unfold, dim=1, keepdim=True) > 0.6).float()[0, 0, :]
    mask_index = torch.nonzero(non_mask_region, as_tuple=True)[0]
    if len(mask_index) == 0:
        composed_fold = x
    else:
        unmask_index = torch.nonzero(non_mask_region != 1, as_tuple=True)[0]
        x_unfold = F.unfold(x, kernel_size=(patch, patch), padding=0, stride=patch)
        query = torch.index_select(x_unfold, 2, mask_index).permute(0, 2, 1)
        key = torch.index_select(x_unfold, 2, unmask_index)
        correlation = F.softmax(torch.bmm(F.normalize(query, dim=2), F.normalize(key, dim=1)), dim=2)
        _, max_arg = torch.max(correlation, dim=2)
        index = max_arg.view(1, 1, -1).expand(-1, key.shape[1], -1)
        x_unfold[:, :, mask_index] = torch.gather(key, 2, index)
        composed_fold = F.fold(x_unfold, output_size=(h, w), kernel_size=(patch, patch), padding=0, stride=patch)
    return conv(sd, f"{prefix}.F_Combine", torch.cat((z, composed_fold, mask), dim=1), padding=1)


def reference_hr_mapping(sd, x, mask):
    """Mapping_Model_with_mask_2.inference_forward (NonLocal_feature_mapping_model.py:187-201)."""
    x = head(sd, "before_NL", x)
    x = resnet_block(sd, "before_NL.13", resnet_block(sd, "before_NL.12", x))
    for scale, patch in ((1, 8), (2, 4), (3, 2)):
        x = reference_patch_attention(sd, f"NL_scale_{scale}", x, mask, patch)
        if scale < 3:
            x = resnet_block(sd, f"res_block_{scale}.1", resnet_block(sd, f"res_block_{scale}.0", x))
    x = resnet_block(sd, "after_NL.1", resnet_block(sd, "after_NL.0", x))
    return tail(sd, "after_NL", 2, x)


def released_size(height: int, width: int, multiple: int) -> tuple[int, int]:
    """test.py:30-31 (multiple 4) and detection.py's full_size (multiple 16), as (height, width)."""
    return int(round(height / multiple) * multiple), int(round(width / multiple) * multiple)


def reference_restore(files, mode, photo: np.ndarray, mask: np.ndarray | None, tmp_path: Path):
    """test.py's loop for one image (H x W x 3 uint8, mask H x W 0/255 at the photo's size): returns
    the saved PNG read back and (g + 1) / 2, both 3 x h x w in [0, 1]."""
    image = Image.fromarray(photo).convert("RGB")
    multiple, resample = (4, Image.BILINEAR) if mode == "quality" else (16, Image.BICUBIC)
    h, w = released_size(image.height, image.width, multiple)
    if (h, w) != (image.height, image.width):
        image = image.resize((w, h), resample)
    transform = lambda img: TF.normalize(TF.to_tensor(img), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # noqa: E731
    with torch.no_grad():
        if mode == "quality":
            mapped = reference_quality_mapping(files["mapping"], reference_encode(files["encoder"],
                                                                                  transform(image).unsqueeze(0)))
        else:
            holes = torch.from_numpy(mask).float()[None, None]
            if holes.shape[2:] != (h, w):  # the pack's own rule for a mask at the photo's size: nearest
                holes = F.interpolate(holes, (h, w), mode="nearest")
            mask_image = Image.fromarray(holes[0, 0].numpy().astype(np.uint8)).convert("RGB")
            if mode == "scratch_hr":
                mask_image = Image.fromarray(cv2.dilate(np.array(mask_image), np.ones((3, 3), np.uint8), iterations=3))
            mask_np = np.array(mask_image).astype("uint8") / 255
            image = Image.fromarray((np.array(image).astype("uint8") * (1 - mask_np) + mask_np * 255).astype("uint8"))
            mask_tensor = TF.to_tensor(mask_image)[:1].unsqueeze(0)
            features = reference_encode(files["encoder"], transform(image).unsqueeze(0))
            mapping = reference_scratch_mapping if mode == "scratch" else reference_hr_mapping
            mapped = mapping(files["mapping"], features, mask_tensor)
        generated = reference_decode(files["decoder"], mapped)
    path = tmp_path / f"restored_{mode}.png"
    vutils.save_image((generated + 1.0) / 2.0, path, nrow=1, padding=0, normalize=True)
    saved = torch.from_numpy(np.array(Image.open(path))).permute(2, 0, 1).float() / 255
    return saved, ((generated[0] + 1) / 2).clamp(0, 1)


# --- photos and masks --------------------------------------------------------------------------------

def photo(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth random photo with some texture, H x W x 3 uint8."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (3, max(2, height // 8), max(2, width // 8))).astype(np.float32)
    smooth = F.interpolate(torch.from_numpy(coarse)[None], (height, width), mode="bicubic", align_corners=False)[0]
    noisy = smooth.permute(1, 2, 0).numpy() + rng.normal(0, 12, (height, width, 3))
    return np.clip(noisy, 0, 255).round().astype(np.uint8)


def scratch_mask(height: int, width: int, block: tuple[int, int, int, int] | None = None,
                 lines: bool = True) -> np.ndarray:
    """0/255 mask: one-pixel horizontal lines on rows of each phase mod 4 and a vertical one (with
    `lines`, else one short line), and an optional filled block (top, left, bottom, right)."""
    mask = np.zeros((height, width), np.uint8)
    if lines:
        for row in (5, 10, 23, 44):  # phases 1, 2, 3, 0
            if row < height:
                mask[row, width // 4: 3 * width // 4] = 255
        mask[height // 3: height - 4, width - 9] = 255
    else:
        mask[height - 8, width // 2: width - 10] = 255
    if block is not None:
        top, left, bottom, right = block
        mask[top:bottom, left:right] = 255
    return mask


def as_input(array: np.ndarray) -> torch.Tensor:
    """H x W x C uint8 (or H x W) to C x H x W in [0, 1]."""
    tensor = torch.from_numpy(array).float() / 255
    return tensor[None] if tensor.ndim == 2 else tensor.permute(2, 0, 1)


# --- layouts -----------------------------------------------------------------------------------------

def test_layouts_are_the_released_ones():
    """Tensor and parameter counts of the released constructors (notes/bopbtl-global-restoration.md §3)."""
    with torch.device("meta"):
        encoder, decoder = VAEEncoder(), VAEDecoder()
        mappings = {mode: network() for mode, network in MAPPINGS.items()}
    generator = {**encoder.state_dict(), **decoder.state_dict()}
    assert len(generator) == 44
    assert sum(p.numel() for p in encoder.parameters()) == 436_096
    assert sum(p.numel() for p in decoder.parameters()) == 436_035
    counts = {mode: (len(network.state_dict()), sum(p.numel() for p in network.parameters()))
              for mode, network in mappings.items()}
    assert counts == {"quality": (40, 36_135_232), "scratch": (60, 51_344_704), "scratch_hr": (66, 73_904_448)}
    shapes = {"encoder.1.weight": (64, 3, 7, 7), "encoder.4.weight": (64, 64, 4, 4),
              "encoder.13.conv_block.5.weight": (64, 64, 3, 3), "decoder.4.weight": (64, 64, 4, 4),
              "decoder.7.bias": (64,), "decoder.11.weight": (3, 64, 7, 7)}
    assert {key: tuple(generator[key].shape) for key in shapes} == shapes
    positions = {half: {int(key.split(".")[1]) for key in generator if key.startswith(f"{half}.")}
                 for half in ("encoder", "decoder")}
    assert positions == {"encoder": {1, 4, 7, 10, 11, 12, 13}, "decoder": {0, 1, 2, 3, 4, 7, 11}}
    quality, scratch, hr = (mappings[mode].state_dict() for mode in MAPPINGS)
    assert tuple(quality["model.0.weight"].shape) == (128, 64, 3, 3)
    assert tuple(quality["model.17.conv_block.5.weight"].shape) == (512, 512, 3, 3)
    assert tuple(quality["model.27.weight"].shape) == (64, 128, 3, 3)
    assert {key.rsplit(".", 1)[0] for key in scratch if key.startswith("NL.") and "res_block" not in key} == \
        {"NL.g", "NL.W", "NL.theta", "NL.phi"}
    assert tuple(scratch["NL.res_block.2.conv_block.1.weight"].shape) == (512, 512, 3, 3)
    assert tuple(scratch["after_NL.15.weight"].shape) == (64, 128, 3, 3)
    assert tuple(hr["NL_scale_1.F_Combine.weight"].shape) == (512, 1025, 3, 3)
    assert {key for key in hr if key.startswith("NL_scale_3.")} == {
        "NL_scale_3.F_Combine.weight", "NL_scale_3.F_Combine.bias", "NL_scale_3.res_block.0.conv_block.1.weight",
        "NL_scale_3.res_block.0.conv_block.1.bias", "NL_scale_3.res_block.0.conv_block.5.weight",
        "NL_scale_3.res_block.0.conv_block.5.bias"}
    assert "before_NL.13.conv_block.5.bias" in hr and tuple(hr["after_NL.11.weight"].shape) == (64, 128, 3, 3)
    assert not any("weight_orig" in key or "running" in key for state in (generator, quality, scratch, hr)
                   for key in state)


def test_files_load_and_tell_their_mode(checkpoints, state_dicts, networks):
    assert sorted(path.relative_to(checkpoints).as_posix() for path in checkpoints.rglob("*.pth")) == [
        "VAE_A_quality/latest_net_G.pth", "VAE_B_quality/latest_net_G.pth", "VAE_B_scratch/latest_net_G.pth",
        "mapping_Patch_Attention/latest_net_mapping_net.pth", "mapping_quality/latest_net_mapping_net.pth",
        "mapping_scratch/latest_net_mapping_net.pth"]
    for mode, restorer in networks.items():
        assert restorer.mode == mode and isinstance(restorer.mapping, MAPPINGS[mode])
        files = state_dicts[mode]
        for network, source in ((restorer.encoder, "encoder"), (restorer.mapping, "mapping"),
                                (restorer.decoder, "decoder")):
            assert not network.training
            for key, tensor in network.state_dict().items():
                assert torch.equal(tensor, files[source][key]), key


# --- strict loading ----------------------------------------------------------------------------------

def test_a_missing_key_is_refused_by_name(state_dicts):
    files = state_dicts["scratch_hr"]
    for builder, source, key in ((build_encoder, "encoder", "encoder.7.bias"),
                                 (build_decoder, "decoder", "decoder.11.weight"),
                                 (build_mapping, "mapping", "NL_scale_2.res_block.0.conv_block.5.weight")):
        broken = {name: tensor for name, tensor in files[source].items() if name != key}
        with pytest.raises(ValueError, match=r"missing 1 key\(s\): " + re.escape(key)):
            builder(broken)
    quality = {name: tensor for name, tensor in state_dicts["quality"]["mapping"].items()
               if not name.startswith("model.27.")}
    with pytest.raises(ValueError, match=r"missing 2 key\(s\): model\.27\.weight, model\.27\.bias"):
        build_mapping(quality)


def test_unused_vae_halves_are_dropped_by_name_and_nothing_else(state_dicts):
    generator = state_dicts["quality"]["encoder"]
    encoder_only = {key: value for key, value in generator.items() if key.startswith("encoder.")}
    decoder_only = {key: value for key, value in generator.items() if key.startswith("decoder.")}
    assert len(encoder_only) == len(decoder_only) == 22
    build_encoder(generator), build_encoder(encoder_only), build_decoder(generator), build_decoder(decoder_only)
    with pytest.raises(ValueError, match=r"unexpected 1 key\(s\): encoder\.99\.weight"):
        build_encoder({**generator, "encoder.99.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"model\.0\.weight \(64, 64, 3, 3\) \(expected \(128, 64, 3, 3\)\)"):
        build_mapping({**state_dicts["quality"]["mapping"], "model.0.weight": torch.zeros(64, 64, 3, 3)})
    spectral = dict(state_dicts["scratch"]["mapping"])
    weight = spectral.pop("NL.g.weight")
    spectral.update({"NL.g.weight_orig": weight, "NL.g.weight_u": torch.zeros(512), "NL.g.weight_v": torch.zeros(512)})
    with pytest.raises(ValueError, match=r"missing 1 key\(s\): NL\.g\.weight;.*no spectral norm"):
        build_mapping(spectral)
    with pytest.raises(ValueError, match="not a BOPBTL mapping state dict"):
        build_mapping(generator)


# --- the non-local block: chunked == dense -----------------------------------------------------------

def attention_inputs(seed: int, channels=64, size=(20, 28), scale=1.0):
    generator = torch.Generator().manual_seed(seed)
    theta, phi, g = (torch.randn(1, channels, *size, generator=generator) for _ in range(3))
    return theta * scale, phi, g


MASKS = {
    "empty": lambda h, w: torch.zeros(1, 1, h, w),
    "lines": lambda h, w: torch.from_numpy(scratch_mask(h, w)).float()[None, None] / 255,
    "nearly_full": lambda h, w: 1 - torch.from_numpy(scratch_mask(h, w, (8, 8, 16, 16))).float()[None, None] / 255,
    "all_holes": lambda h, w: torch.ones(1, 1, h, w),
}


@pytest.mark.parametrize("mask_name", MASKS)
@pytest.mark.parametrize("chunk", [1, 13, 10_000, None])
def test_chunked_attention_equals_the_dense_released_one(mask_name, chunk):
    theta, phi, g = attention_inputs(0)
    valid = feature_validity(MASKS[mask_name](80, 112), (20, 28))
    dense = dense_masked_attention(theta, phi, g, valid)
    chunked = masked_attention(theta, phi, g, valid, chunk=chunk, chunk_bytes=200_000)
    torch.testing.assert_close(chunked, dense, rtol=1e-5, atol=2e-5)  # logits of ~10: a few ulp of them
    if mask_name == "all_holes":
        assert torch.equal(dense, torch.zeros_like(dense))  # rows with no valid key give 0, not NaN


def test_chunked_attention_keeps_the_released_underflow_edge():
    """Very peaked rows whose valid probability mass is below 1e-12 are divided by 1e-12 (scaled
    down), not renormalised to 1: the same in both formulations."""
    theta, phi, g = attention_inputs(1, scale=40.0)
    valid = feature_validity(MASKS["lines"](80, 112), (20, 28))
    rows = F.softmax(torch.matmul(theta.flatten(2).transpose(1, 2), phi.flatten(2)), dim=2)
    mass = (rows * valid.flatten(2)).sum(dim=2)
    assert ((mass > 0) & (mass < 1e-12)).any() or (mass == 0).any()
    dense = dense_masked_attention(theta, phi, g, valid)
    torch.testing.assert_close(masked_attention(theta, phi, g, valid, chunk=13), dense, rtol=1e-5, atol=2e-5)


def test_non_local_block_chunked_equals_dense_and_keeps_intact_positions():
    block = randomised(MaskedNonLocalBlock(64), 3)  # a width the released class takes (in/inter channels)
    x = torch.randn(1, 64, 20, 28, generator=torch.Generator().manual_seed(4))
    mask = MASKS["lines"](80, 112)
    with torch.no_grad():
        dense = block(x, mask, dense=True)
        torch.testing.assert_close(block(x, mask, chunk=33), dense, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(block(x, mask, chunk_bytes=1), dense, rtol=1e-5, atol=1e-5)
    valid = feature_validity(mask, (20, 28)).bool().expand_as(x)
    assert torch.equal(dense[valid], x[valid]) and not torch.allclose(dense[~valid], x[~valid])


def test_attention_in_half_precision_gives_zero_rows_not_nan():
    theta, phi, g = (t.to(torch.bfloat16) for t in attention_inputs(5))
    valid = feature_validity(MASKS["all_holes"](80, 112), (20, 28)).to(torch.bfloat16)
    y = masked_attention(theta, phi, g, valid, chunk=50)
    assert y.dtype == torch.bfloat16 and torch.equal(y, torch.zeros_like(y))


def test_chunk_follows_the_byte_budget():
    assert attention_chunk(182_528, 182_528, chunk_bytes=2 * 4 * 182_528 * 100) == 100
    assert attention_chunk(182_528, 182_528, chunk_bytes=1) == 16
    assert attention_chunk(10, 10, chunk_bytes=1) == 10
    assert attention_chunk(4096, 4096, chunk_bytes=2 ** 40) == 4096


def test_feature_validity_is_not_a_max_pool():
    """At scale 4 a feature cell sees pixels {4i+1, 4i+2}^2 (bilinear) and (4i, 4j) (nearest): a
    one-pixel line on a row = 3 mod 4 is invisible."""
    for row, visible in ((20, True), (21, True), (22, True), (23, False)):
        mask = torch.zeros(1, 1, 64, 64)
        mask[0, 0, row] = 1
        assert bool((feature_validity(mask, (16, 16)) == 0).any()) == visible, row


# --- patch matching ----------------------------------------------------------------------------------

def test_patch_match_chunked_equals_dense_and_keeps_the_released_strip():
    x = torch.randn(1, 32, 20, 28, generator=torch.Generator().manual_seed(6))
    holes = torch.zeros(1, 1, 20, 28)
    holes[..., :8, :8] = 1
    holes[..., 9:13, 10:25] = 1
    for patch in (8, 4, 2):
        dense = patch_match(x, holes, patch, dense=True)
        for chunk in (1, 3, None):
            assert torch.equal(patch_match(x, holes, patch, chunk=chunk, chunk_bytes=1), dense)
        assert not torch.equal(dense, x)
    strip = patch_match(x, holes, 8)
    assert torch.equal(strip[..., 16:, :], torch.zeros_like(strip[..., 16:, :]))  # 20 = 2 * 8 + 4
    assert torch.equal(strip[..., :16, 8:24], x[..., :16, 8:24])  # key patches stay
    assert torch.equal(patch_match(x, torch.zeros_like(holes), 8), x)  # no query: x itself
    with pytest.raises(ValueError, match="no intact patch"):
        patch_match(x, torch.ones_like(holes), 4)


# --- the whole pipeline against the released one -----------------------------------------------------

CASES = {
    "quality": [(70, 90, None)],  # 70 x 90 -> 72 x 88, PIL bilinear
    "scratch": [(64, 96, None), (45, 60, (10, 12, 30, 40))],  # 45 x 60 -> 48 x 64, PIL bicubic, nearest mask
    "scratch_hr": [(48, 80, (0, 0, 32, 32))],  # sides = 16 mod 32: the p = 8 strip; queries at every scale
}


@pytest.mark.parametrize("mode, height, width, block", [(mode, *case) for mode, cases in CASES.items()
                                                         for case in cases])
def test_restoration_matches_the_released_pipeline(state_dicts, networks, tmp_path, mode, height, width, block):
    array = photo(height, width, seed=height + width)
    mask = None if mode == "quality" else scratch_mask(height, width, block, lines=mode == "scratch")
    saved, model = reference_restore(state_dicts[mode], mode, array, mask, tmp_path)
    image = as_input(array)
    holes = None if mask is None else as_input(mask)
    g = network_output(networks[mode], image, holes, chunk=37 if mode == "scratch" else 1)
    assert g.shape == saved.shape == (3, *processed_size(height, width, mode))
    torch.testing.assert_close(postprocessed(g, "model"), model, rtol=0, atol=2e-5)
    ours_saved = postprocessed(g, "released")
    assert (ours_saved - saved).abs().max() <= 1 / 255 + 1e-6  # a level apart at most, where g sits on a rounding edge
    assert (ours_saved != saved).float().mean() < 0.001
    if mode == "scratch_hr":  # queries and keys at every patch size
        holes = feature_holes(dilate(holes[None], 3), (height // 4, width // 4))
        for patch in (8, 4, 2):
            fraction = F.unfold(holes, patch, stride=patch).mean(dim=1)
            assert (fraction > 0.6).any() and (fraction <= 0.6).any(), patch
    if (mode, height) == ("scratch", 64):
        dense = network_output(networks[mode], image, holes, attention="dense")
        torch.testing.assert_close(g, dense, rtol=0, atol=2e-5)


def test_sizes_batches_interrupts_and_grayscale(networks):
    restorer = networks["scratch"]
    images = torch.stack([as_input(photo(32, 48, seed)) for seed in (1, 2)])
    mask = as_input(scratch_mask(32, 48))[None]
    calls = []
    batch = restore_global(restorer, images, mask, check_interrupt=lambda: calls.append(1))
    assert len(calls) == 2 and batch.shape == (2, 3, 32, 48) and batch.dtype == torch.float32
    torch.testing.assert_close(batch[1], restore_at_processed_size(restorer, images[1], mask[0]), rtol=0, atol=0)
    odd = restore_global(networks["quality"], as_input(photo(37, 53, 3))[None], postprocess="model")
    assert odd.shape == (1, 3, 37, 53) and 0 <= odd.min() and odd.max() <= 1
    gray = as_input(photo(26, 30, 4)[..., 0])  # -> 24 x 32 (6.5 -> 6, 7.5 -> 8), PIL bilinear
    torch.testing.assert_close(restore_global(networks["quality"], gray[None]),
                               restore_global(networks["quality"], gray.expand(3, -1, -1)[None]), rtol=0, atol=0)
    with pytest.raises(ValueError, match="takes no mask"):
        restore_global(networks["quality"], images, mask)
    with pytest.raises(ValueError, match="needs a mask"):
        restore_global(restorer, images)
    with pytest.raises(ValueError, match="mask has shape"):
        restore_global(restorer, images, mask[:, :, :16])


@pytest.mark.parametrize("size, mode, expected", [
    ((70, 90), "quality", (72, 88)),  # 17.5 -> 18 (even), 22.5 -> 22 (even)
    ((18, 18), "quality", (16, 16)),  # 4.5 -> 4
    ((1992, 1480), "scratch", (1984, 1472)),  # 124.5 -> 124, 92.5 -> 92
    ((3, 5), "quality", (8, 8)),
    ((5, 250), "scratch_hr", (16, 256)),
])
def test_processed_size(size, mode, expected):
    assert processed_size(*size, mode) == expected


def test_dilation_is_cv2s():
    mask = scratch_mask(48, 64, (0, 60, 10, 64))
    expected = cv2.dilate(mask, np.ones((3, 3), np.uint8), iterations=3)
    ours = dilate(torch.from_numpy(mask).float()[None, None] / 255, 3)[0, 0] * 255
    assert torch.equal(ours.to(torch.uint8), torch.from_numpy(expected))


@pytest.mark.parametrize("mode, size", [("quality", (128, 192)), ("scratch", (128, 192))])
def test_the_memory_estimate_is_above_the_measured_working_memory(networks, mode, size):
    """The node refuses a photo whose estimate exceeds the device's whole memory: the estimate must
    not be below what a run takes (the profiler's exact sum of the CPU allocations)."""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from memory import WorkingMemory
    image = as_input(photo(*size, 5))[None]
    mask = None if mode == "quality" else as_input(scratch_mask(*size))[None]
    measured = WorkingMemory(torch.device("cpu")).peak_mib(lambda: restore_global(networks[mode], image, mask)) * 2**20
    estimate = working_bytes(*size, mode)
    assert measured <= estimate <= 3 * measured + DEFAULT_CHUNK_BYTES, (measured, estimate)
