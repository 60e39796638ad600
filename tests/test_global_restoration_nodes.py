"""SSDiff Global Restoration Loader and SSDiff Global Restoration in the real host (issue 28,
point 1): BOPBTL's files as its zip unpacks them (random full-size networks, torch.save) found in
models/ssdiff/restoration, each combo listing only its kind, loaded strictly, and run on whole
photos exactly as the core runs the same networks; what cannot be used is refused naming the input."""
from __future__ import annotations

import pytest
import torch

from node_runner import execute
from comfyui_ssdiff.models.bopbtl_global import build
from comfyui_ssdiff.priors.global_restoration import restore_global

ENCODER = "restoration/VAE_A_quality/latest_net_G.pth"
MAPPINGS = {"quality": "restoration/mapping_quality/latest_net_mapping_net.pth",
            "scratch": "restoration/mapping_scratch/latest_net_mapping_net.pth"}
DECODERS = {"quality": "restoration/VAE_B_quality/latest_net_G.pth",
            "scratch": "restoration/VAE_B_scratch/latest_net_G.pth"}


def photo_and_mask(height: int = 40, width: int = 56) -> tuple[torch.Tensor, torch.Tensor]:
    ys, xs = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    image = torch.stack([xs, ys, 0.5 + 0.3 * torch.sin(9 * xs)], dim=-1)[None]
    mask = torch.zeros(1, height, width)
    mask[0, height // 2, 4:-4] = 1
    mask[0, 5:-5, width // 3] = 1
    return image, mask


def test_each_combo_lists_its_kind_only(comfy, bopbtl_files):
    schema = comfy.NODE_CLASS_MAPPINGS["SSDiffGlobalRestorationLoader"].define_schema()
    offered = {item.id: item.options for item in schema.inputs if item.id != "precision"}
    assert offered == {"encoder": [ENCODER], "mapping": [MAPPINGS["quality"], MAPPINGS["scratch"]],
                       "decoder": [DECODERS["quality"], DECODERS["scratch"]]}


@pytest.mark.parametrize("mode", ["quality", "scratch"])
def test_the_loaded_networks_restore_as_the_core_does(comfy, bopbtl_files, mode):
    networks, = execute(comfy, "SSDiffGlobalRestorationLoader", encoder=ENCODER, mapping=MAPPINGS[mode],
                        decoder=DECODERS[mode])
    assert networks.mode == mode
    image, mask = photo_and_mask()
    images = torch.cat([image, image.flip(2)])
    masks = None if mode == "quality" else mask
    restored, = execute(comfy, "SSDiffGlobalRestoration", global_restoration=networks, image=images,
                        postprocess="released", mask_dilation=-1, **({} if masks is None else {"mask": masks}))
    files = {name: torch.load(bopbtl_files / path.removeprefix("restoration/"), weights_only=True)
             for name, path in (("encoder", ENCODER), ("mapping", MAPPINGS[mode]), ("decoder", DECODERS[mode]))}
    expected = restore_global(build(**files), images.movedim(-1, 1), None if masks is None else masks[:, None])
    assert restored.shape == images.shape
    torch.testing.assert_close(restored, expected.movedim(1, -1), rtol=0, atol=0)


def test_grayscale_and_rgba_are_taken_as_rgb(comfy, bopbtl_files):
    networks, = execute(comfy, "SSDiffGlobalRestorationLoader", encoder=ENCODER, mapping=MAPPINGS["quality"],
                        decoder=DECODERS["quality"])
    image, _ = photo_and_mask(24, 33)
    gray = image[..., :1]
    rgba = torch.cat([image, torch.full_like(gray, 0.5)], dim=-1)
    run = {"global_restoration": networks, "postprocess": "model", "mask_dilation": -1}
    from_gray, = execute(comfy, "SSDiffGlobalRestoration", image=gray, **run)
    assert from_gray.shape == (1, 24, 33, 3)
    torch.testing.assert_close(from_gray, execute(comfy, "SSDiffGlobalRestoration", image=gray.expand(-1, -1, -1, 3),
                                                  **run)[0], rtol=0, atol=0)
    from_rgba, = execute(comfy, "SSDiffGlobalRestoration", image=rgba, **run)
    torch.testing.assert_close(from_rgba, execute(comfy, "SSDiffGlobalRestoration", image=image, **run)[0],
                               rtol=0, atol=0)


def test_what_cannot_be_used_is_refused_naming_the_input(comfy, bopbtl_files):
    loader = comfy.NODE_CLASS_MAPPINGS["SSDiffGlobalRestorationLoader"]
    refusal = loader.validate_inputs(encoder=ENCODER, mapping=MAPPINGS["scratch"], decoder=DECODERS["quality"])
    assert "BOPBTL decodes mapping_scratch with VAE_B_scratch" in refusal
    assert "global_checkpoints.zip" in loader.validate_inputs(mapping="restoration/nothing.pth")
    quality, = execute(comfy, "SSDiffGlobalRestorationLoader", encoder=ENCODER, mapping=MAPPINGS["quality"],
                       decoder=DECODERS["quality"])
    scratch, = execute(comfy, "SSDiffGlobalRestorationLoader", encoder=ENCODER, mapping=MAPPINGS["scratch"],
                       decoder=DECODERS["scratch"])
    image, mask = photo_and_mask()
    run = {"image": image, "postprocess": "released", "mask_dilation": -1}
    with pytest.raises(ValueError, match="mask: the quality mapping takes no mask"):
        execute(comfy, "SSDiffGlobalRestoration", global_restoration=quality, mask=mask, **run)
    with pytest.raises(ValueError, match="mask: the scratch mapping repaints the damage a mask marks; connect one"):
        execute(comfy, "SSDiffGlobalRestoration", global_restoration=scratch, **run)
    with pytest.raises(ValueError, match="mask is 56 x 20 px but image is 56 x 40 px"):
        execute(comfy, "SSDiffGlobalRestoration", global_restoration=scratch, mask=mask[:, :20], **run)
    with pytest.raises(ValueError, match="is not a BOPBTL mapping: it is another kind of network"):
        execute(comfy, "SSDiffGlobalRestorationLoader", encoder=ENCODER, mapping=ENCODER, decoder=DECODERS["quality"])
