"""Scratch masks that do not fit the image, empty and full masks: documented behaviour through the
real server, and finite outputs in-process."""
from __future__ import annotations

import pytest
import torch

from robustness_support import (assert_still_serves, both_stages_prompt, execution_error, output_arrays, random_rgb,
                                write_image)

NAN_CAST_WARNING = "invalid value encountered"


def solid_mask(value: float, width: int, height: int) -> dict:
    return {"class_type": "SolidMask", "inputs": {"value": value, "width": width, "height": height}}


def with_solid_mask(server, value: float, width: int, height: int, seed: int) -> dict:
    prompt = both_stages_prompt(write_image(server, random_rgb(32, 32, seed=seed)), seed=seed,
                                with_scratch_mask=False)
    prompt["8"] = solid_mask(value, width, height)
    prompt["3"]["inputs"]["scratch_mask"] = ["8", 0]
    prompt["4"]["inputs"]["scratch_mask"] = ["8", 0]
    return prompt


def test_mask_of_another_size_is_resized_with_a_warning(server):
    before = server.log_text().count("scratch_mask is (16, 24), resizing it to the image's (32, 32)")
    arrays = output_arrays(server, server.run(with_solid_mask(server, 1.0, 24, 16, seed=31), timeout=120))
    assert len(arrays) == 1 and arrays[0].shape == (32, 32, 3)
    assert server.log_text().count("scratch_mask is (16, 24), resizing it to the image's (32, 32)") > before
    assert_still_serves(server)


@pytest.mark.parametrize("value", [0.0, 1.0], ids=["empty", "full"])
def test_empty_and_full_masks_run_without_nan(server, value):
    before = server.log_text().count(NAN_CAST_WARNING)
    arrays = output_arrays(server, server.run(with_solid_mask(server, value, 32, 32, seed=32 + int(value)),
                                              timeout=120))
    assert len(arrays) == 1 and arrays[0].shape == (32, 32, 3)
    assert server.log_text().count(NAN_CAST_WARNING) == before, "SaveImage cast NaN pixels"
    assert_still_serves(server)


@pytest.mark.parametrize("value", [0.0, 1.0], ids=["empty", "full"])
def test_empty_and_full_masks_give_finite_images_in_process(comfy, value):
    from node_runner import execute
    from test_host_nodes import stage1_inputs, stage2_inputs, synthetic_faces

    model, _ = execute(comfy, "SSDiffFaceDiffusionLoader", ckpt_name="tiny_face_ddpm.pth", weight_dtype="fp32")
    faces = synthetic_faces()
    mask = torch.full((1, 32, 32), value)
    reference, = execute(comfy, "SSDiffPseudoReference", model=model,
                         **stage1_inputs(faces, steps=2, scratch_mask=mask))
    assert torch.isfinite(reference).all()
    restored, = execute(comfy, "SSDiffSampler", model=model,
                        **stage2_inputs(faces, reference, steps=2, scratch_mask=mask))
    assert torch.isfinite(restored).all() and restored.shape == faces.shape


def repeated(image: list, amount: int) -> dict:
    return {"class_type": "RepeatImageBatch", "inputs": {"image": image, "amount": amount}}


def masks_of(image: list) -> dict:
    return {"class_type": "ImageToMask", "inputs": {"image": image, "channel": "red"}}


def test_mask_batch_that_does_not_match_the_image_batch_is_refused(server):
    prompt = both_stages_prompt(write_image(server, random_rgb(32, 32, seed=34)), seed=34, with_scratch_mask=False)
    prompt["8"] = repeated(["2", 0], 2)
    prompt["9"] = masks_of(["10", 0])
    prompt["10"] = repeated(["2", 0], 3)
    for node in ("3", "4"):
        prompt[node]["inputs"].update(image=["8", 0], scratch_mask=["9", 0])
    prompt["4"]["inputs"]["coarse_restoration"] = ["8", 0]
    text = execution_error(server, prompt)
    assert "scratch_mask has a batch of 3, image a batch of 2" in text and "one per image" in text
    assert_still_serves(server)


def test_single_mask_serves_every_image_of_a_batch(server):
    prompt = with_solid_mask(server, 0.0, 32, 32, seed=35)
    prompt["8"]["inputs"]["value"] = 1.0
    prompt["10"] = repeated(["2", 0], 2)
    for node in ("3", "4"):
        prompt[node]["inputs"]["image"] = ["10", 0]
    prompt["4"]["inputs"]["coarse_restoration"] = ["10", 0]
    arrays = output_arrays(server, server.run(prompt, timeout=120))
    assert len(arrays) == 2 and all(array.shape == (32, 32, 3) for array in arrays)
    assert_still_serves(server)


def test_fill_damage_with_a_mask_of_every_pixel_is_refused_naming_the_likely_cause(server):
    """Nothing is left to fill from (a random or mis-set detector marks the whole photo)."""
    from node_prompts import node_prompt

    prompt = node_prompt(server, "SSDiffFillDamage")
    prompt["mask"]["inputs"]["value"] = 1.0
    text = execution_error(server, prompt)
    assert "the mask marks every pixel of photo 0 as damaged (after growing it by 2 px): nothing is left to " \
           "fill from" in text and "an inverted mask" in text, text
    assert_still_serves(server)
