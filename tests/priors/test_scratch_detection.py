"""BOPBTL scratch detector: layout of the published network, checkpoint loading through tiny random
networks of the same class, and the pre/post-processing of BOPBTL's `Global/detection.py`."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from safetensors.torch import load_file, save_file

from comfyui_ssdiff.models.scratch_detection import ScratchUNet, ScratchUNetConfig
from comfyui_ssdiff.priors.scratch import (detect_scratch_probability, network_size, pil_luma, scratch_mask,
                                           working_bytes, working_size)

MANIFEST = Path(__file__).with_name("bopbtl_scratch_keys.txt")
TINY = ScratchUNetConfig(depth=2, wf=3)


def random_network(config: ScratchUNetConfig = TINY, seed: int = 0) -> ScratchUNet:
    """A randomly initialised network with non-trivial batch-norm statistics, in eval mode."""
    torch.manual_seed(seed)
    network = ScratchUNet(config)
    for name, tensor in network.state_dict().items():
        if name.endswith("running_mean"):
            tensor.normal_(0, 0.1)
        elif name.endswith("running_var"):
            tensor.uniform_(0.5, 2.0)
    return network.eval()


@pytest.fixture(scope="module")
def tiny() -> ScratchUNet:
    return random_network()


@pytest.fixture(scope="module")
def full_layout() -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        return ScratchUNet(ScratchUNetConfig()).state_dict()


def rgb(array: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 to 1 x 3 x H x W in [0, 1]."""
    return torch.from_numpy(array).permute(2, 0, 1)[None].float() / 255


# --- the published network's layout -------------------------------------------------------------

def test_full_network_layout(full_layout):
    assert len(full_layout) == 156
    # 37.65 M counts every stored element (BN statistics and the blur kernels included), as the
    # 143.6 MiB fp32 file size does; the learnable parameters alone are 37,626,177.
    assert round(sum(t.numel() for t in full_layout.values()) / 1e6, 2) == 37.65
    with torch.device("meta"):
        assert sum(p.numel() for p in ScratchUNet().parameters()) == 37_626_177
    assert full_layout["down_sample.0.4.filt"].shape == (64, 1, 3, 3)
    assert full_layout["down_sample.3.4.filt"].shape == (512, 1, 3, 3)
    assert full_layout["first.1.weight"].shape == (64, 1, 7, 7)
    assert full_layout["down_path.3.block.5.weight"].shape == (1024, 1024, 3, 3)
    assert full_layout["up_path.0.up.2.weight"].shape == (512, 1024, 3, 3)
    assert full_layout["last.1.weight"].shape == (1, 64, 3, 3)
    families = {
        r"first\.1\.(weight|bias)": 2,
        r"down_sample\.[0-3]\.1\.(weight|bias)": 8,
        r"down_sample\.[0-3]\.2\.(weight|bias|running_mean|running_var|num_batches_tracked)": 20,
        r"down_sample\.[0-3]\.4\.filt": 4,
        r"down_path\.[0-3]\.block\.[15]\.(weight|bias)": 16,
        r"down_path\.[0-3]\.block\.[26]\.(weight|bias|running_mean|running_var|"
        r"num_batches_tracked)": 40,
        r"up_path\.[0-3]\.up\.2\.(weight|bias)": 8,
        r"up_path\.[0-3]\.conv_block\.block\.[15]\.(weight|bias)": 16,
        r"up_path\.[0-3]\.conv_block\.block\.[26]\.(weight|bias|running_mean|running_var|"
        r"num_batches_tracked)": 40,
        r"last\.1\.(weight|bias)": 2,
    }
    for pattern, count in families.items():
        assert sum(bool(re.fullmatch(pattern, key)) for key in full_layout) == count, pattern
    assert sum(families.values()) == 156


def test_full_network_matches_manifest(full_layout):
    lines = [line for line in MANIFEST.read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines == [f"{name} {tuple(tensor.shape)}" for name, tensor in full_layout.items()]


def test_config_of_full_layout(full_layout):
    assert ScratchUNetConfig.from_state_dict(full_layout) == ScratchUNetConfig()


# --- checkpoints --------------------------------------------------------------------------------

@pytest.mark.parametrize("config", [TINY, ScratchUNetConfig(depth=3, wf=2)])
@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
def test_checkpoint_round_trip(tmp_path, config, fmt):
    network = random_network(config, seed=1)
    state_dict = network.state_dict()
    if fmt == "pt":
        path = tmp_path / "FT_Epoch_latest.pt"
        torch.save({"model_state": state_dict, "epoch": 3,
                    "optimizer_state": {"state": {}, "param_groups": [{"lr": 1e-4}]}}, path)
        raw = torch.load(path, map_location="cpu", weights_only=True)
    else:
        path = tmp_path / "scratch.safetensors"
        save_file({name: tensor.contiguous() for name, tensor in state_dict.items()}, path)
        raw = load_file(path)
    loaded_dict = raw.get("model_state", raw)  # the loader node unwraps via comfy_adapter.checkpoints.read_state_dict
    assert ScratchUNetConfig.from_state_dict(loaded_dict) == config
    loaded = ScratchUNet(ScratchUNetConfig.from_state_dict(loaded_dict))
    loaded.load_state_dict(loaded_dict, strict=True)
    loaded.eval()
    x = torch.randn(1, 1, 32, 48)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), network(x), rtol=0, atol=0)


def test_other_architecture_is_rejected():
    with pytest.raises(ValueError, match=r"missing first\.1\.weight.*conv\.weight"):
        ScratchUNetConfig.from_state_dict({"conv.weight": torch.zeros(4, 3, 3, 3)})
    broken = {name: tensor for name, tensor in random_network().state_dict().items()
              if not name.startswith("up_path.1.")}
    with pytest.raises(ValueError, match="different numbers of levels"):
        ScratchUNetConfig.from_state_dict(broken)


def test_network_output_is_logits_at_input_size(tiny):
    with torch.no_grad():
        out = tiny(torch.randn(2, 1, 16, 32))
    assert out.shape == (2, 1, 16, 32)
    assert (out < 0).any() or (out > 1).any()  # no sigmoid/tanh inside


# --- preprocessing ------------------------------------------------------------------------------

def test_grayscale_matches_pil():
    array = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    expected = torch.from_numpy(np.array(Image.fromarray(array).convert("L"))).float() / 255
    ours = pil_luma(rgb(array))
    assert ours.shape == (1, 1, 37, 53)
    assert (ours[0, 0] - expected).abs().max() <= 1 / 255 + 1e-6
    assert torch.equal(ours[0, 0], expected)  # in fact exact: the same fixed-point arithmetic


@pytest.mark.parametrize("size, mode, working, network", [
    ((250, 250), "full_size", (256, 256), (256, 256)),
    ((256, 264), "full_size", (256, 256), (256, 256)),  # 16.5 rounds half to even: 16
    ((256, 280), "full_size", (256, 288), (256, 288)),
    ((8, 8), "full_size", (16, 16), (256, 256)),       # BOPBTL would give 0 x 0
    ((3000, 2000), "full_size", (3008, 2000), (384, 256)),
    ((2000, 3000), "full_size", (2000, 3008), (256, 384)),
    ((3000, 2000), "scale_256", (384, 256), (384, 256)),
    ((512, 512), "full_size", (512, 512), (256, 256)),
    ((97, 413), "scale_256", (256, 1088), (256, 1088)),
])
def test_sizes(size, mode, working, network):
    assert working_size(*size, resize_mode=mode) == working
    assert network_size(*working) == network


def test_unknown_resize_mode(tiny):
    with pytest.raises(ValueError, match="resize_mode"):
        detect_scratch_probability(tiny, torch.zeros(1, 3, 16, 16), resize_mode="resize_256")


def test_detection_reproduces_bopbtl_pipeline(tiny):
    """Step by step as `Global/detection.py`: PIL bicubic to the working size, PIL "L", [-1, 1],
    bilinear to short side 256, sigmoid, nearest back to the working size; then to the input."""
    array = np.random.default_rng(1).integers(0, 256, (60, 90, 3), dtype=np.uint8)
    pil = Image.fromarray(array).resize((96, 64), Image.Resampling.BICUBIC).convert("L")
    gray = (torch.from_numpy(np.array(pil)).float()[None, None] / 255 - 0.5) / 0.5
    gray = F.interpolate(gray, size=(256, 384), mode="bilinear", align_corners=False)
    with torch.no_grad():
        expected = F.interpolate(torch.sigmoid(tiny(gray)), size=(64, 96), mode="nearest")
    expected = F.interpolate(expected, size=(60, 90), mode="nearest")
    ours = detect_scratch_probability(tiny, rgb(array))
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("mode", ["full_size", "scale_256"])
@pytest.mark.parametrize("size", [(250, 250), (256, 264), (8, 8), (30, 70)])
def test_detection_returns_input_size(tiny, size, mode):
    image = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(2))
    probability = detect_scratch_probability(tiny, image, resize_mode=mode)
    assert probability.shape == (1, 1, *size)
    assert probability.dtype == torch.float32
    assert torch.isfinite(probability).all()
    assert probability.min() >= 0 and probability.max() <= 1


def test_detection_batch_and_interrupt(tiny):
    images = torch.rand(3, 3, 24, 40, generator=torch.Generator().manual_seed(3))
    calls = []
    batch = detect_scratch_probability(tiny, images, check_interrupt=lambda: calls.append(1))
    assert len(calls) == 3
    torch.testing.assert_close(batch[1:2], detect_scratch_probability(tiny, images[1:2]),
                               rtol=0, atol=1e-6)

    class Interrupted(Exception):
        pass

    def interrupt() -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        detect_scratch_probability(tiny, images, check_interrupt=interrupt)
    with pytest.raises(ValueError, match="B x 3 x H x W"):
        detect_scratch_probability(tiny, images[:, :1])


def test_synthetic_scratched_photo(tiny):
    """Plumbing on an aged-looking picture with drawn bright lines (a random network: no
    detection quality is claimed)."""
    height, width = 120, 100
    ramp = np.linspace(60, 180, width, dtype=np.float32)[None, :, None]
    noise = np.random.default_rng(4).normal(0, 8, (height, width, 1)).astype(np.float32)
    sepia = np.array([1.0, 0.85, 0.65], dtype=np.float32)
    photo = Image.fromarray(np.clip((ramp + noise) * sepia, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(photo)
    draw.line([(5, 10), (90, 110)], fill=(250, 250, 245), width=2)
    draw.line([(70, 0), (60, 119)], fill=(240, 240, 235), width=1)
    probability = detect_scratch_probability(tiny, rgb(np.array(photo)))
    assert probability.shape == (1, 1, height, width)
    assert 0 <= probability.min() <= probability.max() <= 1
    mask = scratch_mask(probability, dilation_px=2)
    assert mask.shape == (1, 1, height, width)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}


# --- the binary mask ----------------------------------------------------------------------------

def test_mask_threshold_and_dilation():
    probability = torch.zeros(1, 1, 9, 9)
    probability[0, 0, 4, 4] = 0.4  # the threshold itself counts (BOPBTL: P >= 0.4)
    probability[0, 0, 0, 8] = 0.39
    mask = scratch_mask(probability)
    assert mask.dtype == torch.float32
    assert mask.sum() == 1 and mask[0, 0, 4, 4] == 1
    assert scratch_mask(probability, threshold=0.3).sum() == 2
    grown = scratch_mask(probability, dilation_px=2)
    expected = torch.zeros(9, 9)
    expected[2:7, 2:7] = 1  # a 5 x 5 square
    assert torch.equal(grown[0, 0], expected)
    assert scratch_mask(probability, dilation_px=20).sum() == 81
    with pytest.raises(ValueError):
        scratch_mask(probability, dilation_px=-1)


def test_mask_add_and_erase():
    probability = torch.zeros(2, 1, 4, 4)
    probability[:, :, 0, :] = 0.9  # top row detected in both images
    add = torch.zeros(1, 1, 4, 4)
    add[..., 3, 3] = 1.0  # batch 1: applies to both images
    erase = torch.zeros(2, 1, 4, 4)
    erase[1, 0, 0, 0] = 0.6  # > 0.5: erased in the second image only
    erase[0, 0, 0, 1] = 0.5  # not > 0.5: kept
    mask = scratch_mask(probability, add=add, erase=erase)
    assert mask[:, 0, 3, 3].tolist() == [1.0, 1.0]
    assert mask[:, 0, 0, 0].tolist() == [1.0, 0.0]
    assert mask[0, 0, 0, 1] == 1
    assert mask.sum().item() == 2 * 5 - 1
    # erase wins over add, and ComfyUI-style B x H x W masks are accepted
    assert scratch_mask(probability, add=add[:, 0], erase=add[:, 0])[:, 0, 3, 3].sum() == 0
    with pytest.raises(ValueError, match="add mask"):
        scratch_mask(probability, add=torch.zeros(1, 1, 5, 4))
    with pytest.raises(ValueError, match="erase mask"):
        scratch_mask(probability, erase=torch.zeros(3, 1, 4, 4))


def test_the_memory_estimate_is_above_the_measured_working_memory_and_hardly_grows_with_the_photo():
    """Scratch Mask asks ComfyUI for this much room beside the weights: the released UNet (not the
    tiny one) at the network's size, measured by the profiler's exact sum of the CPU allocations.
    The UNet sees every photo at a 256 px short side, so a photo 16 times larger costs 8 bytes a
    pixel more, not 16 times more (the estimate was 64 times the photo's bytes before)."""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from memory import WorkingMemory
    network = random_network(ScratchUNetConfig())
    image = torch.rand(1, 3, 300, 200, generator=torch.Generator().manual_seed(3))
    measured = WorkingMemory(torch.device("cpu")).peak_mib(lambda: detect_scratch_probability(network, image)) * 2**20
    estimate = working_bytes(300, 200)
    assert measured <= estimate <= 1.5 * measured, (measured, estimate)
    assert working_bytes(1200, 800) < 1.5 * estimate  # 16 times the pixels
