"""Work too big for the machine, refused before anything is allocated: a photo far beyond any
memory straight into a one-stop node (a zero-stride view from RobustnessProbeHugeImage, so that
the test itself needs no memory)."""
from __future__ import annotations

import psutil
import torch
import pytest

from node_prompts import UNDER_TEST, node_prompt
from robustness_support import assert_still_serves, execution_error


@pytest.mark.parametrize("node", ["SSDiffPseudoReference", "SSDiffSampler"])
def test_a_photo_too_big_for_the_machine_is_refused_up_front_naming_size_memory_and_face_crop(server, node):
    prompt = node_prompt(server, node)
    prompt["huge"] = {"class_type": "RobustnessProbeHugeImage", "inputs": {"width": 30000, "height": 20000}}
    prompt[UNDER_TEST]["inputs"]["image"] = ["huge", 0]
    prompt[UNDER_TEST]["inputs"].pop("scratch_mask")
    if node == "SSDiffSampler":
        prompt[UNDER_TEST]["inputs"].update(coarse_restoration=["huge", 0], pseudo_reference=["huge", 0])
        for companion in ("parsing", "colour_reference", "colour_region"):
            prompt[UNDER_TEST]["inputs"].pop(companion)
    text = execution_error(server, prompt)
    assert "a guided step of the face DDPM on a batch of 1 at 30000x20000 needs about" in text, text
    assert "GiB, more than the" in text and "put SSDiff Face Crop before this node" in text
    assert_still_serves(server)


@pytest.mark.parametrize("node, bytes_per_pixel, work", [
    ("SSDiffFillDamage", 18, "filling the damage of a"),
    ("SSDiffGlobalRestoration", 900, "BOPBTL's global restoration of a"),
])
def test_a_photo_too_big_for_the_method_is_refused_up_front_naming_size_and_memory(server, node, bytes_per_pixel,
                                                                                   work):
    """A photo (and its mask) whose whole-photo work needs more than the machine's memory: twice
    the machine's memory by the node's own estimate (psutil's total, which ComfyUI reads with
    --cpu)."""
    side = int((2 * psutil.virtual_memory().total / bytes_per_pixel) ** 0.5) + 1
    prompt = node_prompt(server, node)
    prompt["huge"] = {"class_type": "RobustnessProbeHugeImage", "inputs": {"width": side, "height": side}}
    prompt["huge_mask"] = {"class_type": "ImageToMask", "inputs": {"image": ["huge", 0], "channel": "red"}}
    prompt[UNDER_TEST]["inputs"].update(image=["huge", 0], mask=["huge_mask", 0])
    text = execution_error(server, prompt)
    assert f"{work} {side}x{side} photo" in text and "GiB, more than the" in text, text
    assert "scale the photo down" in text
    assert_still_serves(server)


def test_a_broadcast_image_is_checked_through_one_slice_of_its_values(comfy):
    """An expanded (zero-stride) IMAGE or MASK holds one slice's values however large it claims to
    be: its range and finiteness are checked on that slice, so a refusal by size comes at once."""
    from comfyui_ssdiff.nodes.input_checks import InputError, check_image, check_mask, distinct_values

    row = torch.rand(1, 1, 64, 3, generator=torch.Generator().manual_seed(0))
    huge = row.expand(1, 200_000, 64, 3)
    assert distinct_values(huge).shape == (1, 1, 64, 3)
    check_image(huge, "image")
    check_mask(huge[..., 0], "mask")
    broken = row.clone()
    broken[0, 0, 7, 1] = float("nan")
    with pytest.raises(InputError, match=r"image contains 200000 NaN or infinite values \(of 38400000\)"):
        check_image(broken.expand(1, 200_000, 64, 3), "image")  # the NaN in each of the 200,000 rows
    with pytest.raises(InputError, match="0..255"):
        check_image((row * 255).expand(1, 200_000, 64, 3), "image")
