"""SSDiff Fill Damage and SSDiff Inpaint Model Loader in the real host (issue 28, point 3): a
scratched photo with a known clean original comes back closer to it inside the mask and
bit-identical outside the grown mask; LaMa from big-lama.pt (random weights, the upstream archive)
through the loader fills as the core does with the same network; what cannot be used is refused
naming the input."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from node_runner import execute
from comfyui_ssdiff.priors.inpainting import fill, fill_region
from harness.tiny_models import big_lama, save_big_lama_archive


def scratched_photo(height: int = 96, width: int = 128) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(clean IMAGE, scratched IMAGE, MASK): smooth gradients crossed by two bright scratches."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    clean = np.stack([xs / width, ys / height, 0.5 + 0.3 * np.sin(xs / 9) * np.cos(ys / 11)], axis=-1)
    mask = np.zeros((height, width), np.uint8)
    cv2.line(mask, (5, 10), (120, 80), 1, 2)
    cv2.line(mask, (20, 90), (90, 5), 1, 1)
    damaged = np.where(mask[..., None] > 0, 0.97, clean).astype(np.float32)
    return torch.from_numpy(clean)[None], torch.from_numpy(damaged)[None], torch.from_numpy(mask.astype(np.float32))[None]


def test_telea_fills_the_scratches_towards_the_original_and_leaves_the_rest_bit_identical(comfy):
    clean, damaged, mask = scratched_photo()
    rgba = torch.cat([damaged, torch.full_like(damaged[..., :1], 0.25)], dim=-1)
    for image in (damaged, rgba, damaged[..., :1]):
        filled, = execute(comfy, "SSDiffFillDamage", image=image, mask=mask, method="telea", dilation=2, radius=5.0)
        assert filled.shape == image.shape
        inside = mask[0] > 0
        reference = clean[0, ..., :image.shape[-1]] if image.shape[-1] != 4 else clean[0]
        channels = min(3, image.shape[-1])
        error_before = (image[0][inside][:, :channels] - reference[inside][:, :channels]).abs().mean()
        error_after = (filled[0][inside][:, :channels] - reference[inside][:, :channels]).abs().mean()
        assert error_after < 0.2 * error_before, (error_after, error_before)
        outside = ~fill_region(mask, 2)[0]
        assert torch.equal(filled[0][outside], image[0][outside])
        if image.shape[-1] == 4:
            assert torch.equal(filled[..., 3], image[..., 3])


def test_lama_from_big_lama_pt_through_the_loader_fills_as_the_core_does(comfy, models_root):
    network = big_lama(seed=3)
    save_big_lama_archive(network, models_root / "inpaint" / "big-lama.pt")
    loaded, = execute(comfy, "SSDiffInpaintModelLoader", model_name="big-lama.pt")
    _, damaged, mask = scratched_photo(48, 64)
    filled, = execute(comfy, "SSDiffFillDamage", image=damaged, mask=mask, method="lama", dilation=2, radius=5.0,
                      inpaint_model=loaded)
    with torch.inference_mode():
        expected = fill(damaged.movedim(-1, 1), mask, "lama", network.eval())
    torch.testing.assert_close(filled, expected.movedim(1, -1), atol=1e-5, rtol=0)
    assert not torch.equal(filled, damaged)


@pytest.mark.parametrize("change, message", [
    ({"method": "lama"}, "method 'lama' needs inpaint_model"),
    ({"mask": torch.zeros(1, 40, 64)}, "mask is 64 x 40 px but image is 128 x 96 px"),
    ({"mask": torch.zeros(3, 96, 128)}, "mask has a batch of 3, image a batch of 1"),
])
def test_what_cannot_be_used_is_refused_naming_the_input(comfy, change, message):
    _, damaged, mask = scratched_photo()
    inputs = {"image": damaged, "mask": mask, "method": "telea", "dilation": 2, "radius": 5.0, **change}
    with pytest.raises(ValueError, match=message):
        execute(comfy, "SSDiffFillDamage", **inputs)
    assert "big-lama.pt" in comfy.NODE_CLASS_MAPPINGS["SSDiffInpaintModelLoader"].validate_inputs(
        model_name="not_there.pt")


def test_a_renamed_lama_archive_is_offered_by_its_loader_and_by_no_other(comfy, models_root):
    """big-lama.pt is a TorchScript archive: its tensor names are read without running it, so a copy
    under the user's own name is listed as LaMa (and one dropped into models/ssdiff as nothing)."""
    import folder_paths

    renamed = save_big_lama_archive(big_lama(seed=5), models_root / "inpaint" / "lama_from_iopaint.pt")
    stray = models_root / "ssdiff" / "stray_lama.pt"
    stray.write_bytes(renamed.read_bytes())
    folder_paths.filename_list_cache.clear()
    try:
        def offered(node_id: str, name: str = "model_name") -> list[str]:
            schema = comfy.NODE_CLASS_MAPPINGS[node_id].define_schema()
            return next(item.options for item in schema.inputs if item.id == name)

        assert "lama_from_iopaint.pt" in offered("SSDiffInpaintModelLoader")
        for node_id, name in (("SSDiffScratchDetectorLoader", "model_name"), ("SSDiffFaceDiffusionLoader", "ckpt_name"),
                              ("SSDiffColourTransferLoader", "model_name"), ("SSDiffFaceParserLoader", "model_name")):
            assert "stray_lama.pt" not in offered(node_id, name), node_id
        loaded, = execute(comfy, "SSDiffInpaintModelLoader", model_name="lama_from_iopaint.pt")
        assert isinstance(loaded, torch.nn.Module)
    finally:
        renamed.unlink()
        stray.unlink()
        folder_paths.filename_list_cache.clear()
