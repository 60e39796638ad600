"""In-process: the nodes leave their inputs alone (image and mask tensors, the MODEL's weights and
model_options), so a cached upstream output is never changed behind ComfyUI's back."""
from __future__ import annotations

import pytest
import torch

from test_host_nodes import execute, scratch_mask, stage1_inputs, stage2_inputs, synthetic_faces


@pytest.fixture(scope="module")
def model(comfy):
    model, _ = execute(comfy, "SSDiffFaceDiffusionLoader", ckpt_name="tiny_face_ddpm.pth", weight_dtype="fp32")
    return model


def snapshot(model) -> tuple[dict[str, torch.Tensor], str]:
    weights = {key: value.detach().clone() for key, value in model.model.state_dict().items()}
    return weights, repr(model.model_options)


def assert_model_unchanged(model, before: tuple[dict[str, torch.Tensor], str]) -> None:
    weights, options = before
    after = model.model.state_dict()
    assert set(after) == set(weights)
    for key, value in weights.items():
        assert torch.equal(after[key], value), key
    assert repr(model.model_options) == options


def test_pseudo_reference_and_sampler_leave_inputs_and_model_unchanged(comfy, model):
    faces, mask = synthetic_faces(seed=3), scratch_mask()
    faces_copy, mask_copy, before = faces.clone(), mask.clone(), snapshot(model)
    reference, = execute(comfy, "SSDiffPseudoReference", model=model,
                         **stage1_inputs(faces, steps=2, scratch_mask=mask))
    reference_copy = reference.clone()
    execute(comfy, "SSDiffSampler", model=model, **stage2_inputs(faces, reference, steps=2, scratch_mask=mask))
    assert torch.equal(faces, faces_copy) and torch.equal(mask, mask_copy)
    assert torch.equal(reference, reference_copy)
    assert_model_unchanged(model, before)


def test_scratch_mask_leaves_image_and_painted_masks_unchanged(comfy):
    detector, = execute(comfy, "SSDiffScratchDetectorLoader", model_name="FT_Epoch_latest.pt")
    image, add, erase = synthetic_faces(seed=4), scratch_mask(), scratch_mask().flip(-1)
    copies = image.clone(), add.clone(), erase.clone()
    mask, _ = execute(comfy, "SSDiffScratchMask", detector=detector, image=image, threshold=0.4, dilation=2,
                      resize_mode="full_size", add_mask=add, erase_mask=erase)
    assert mask.shape == (1, 32, 32)
    for tensor, copy in zip((image, add, erase), copies):
        assert torch.equal(tensor, copy)


def test_face_crop_and_paste_leave_photo_and_faces_unchanged(comfy):
    detector, = execute(comfy, "SSDiffFaceDetectorLoader", model_name="detection_mobilenet0.25_Final.pth")
    photo, mask = synthetic_faces(height=96, width=80, seed=5), scratch_mask(height=96, width=80)
    photo_copy, mask_copy = photo.clone(), mask.clone()
    faces, _, info = execute(comfy, "SSDiffFaceCrop", detector=detector, image=photo, crop_size=64,
                             selection="largest", index=0, min_eye_distance=0.0, confidence=1.0, mask=mask)
    faces_copy = faces.clone()
    pasted, = execute(comfy, "SSDiffFacePaste", image=photo, faces=faces, face_info=info)
    assert torch.equal(pasted, photo) and pasted.data_ptr() != photo.data_ptr()  # a copy, not the input
    assert torch.equal(photo, photo_copy) and torch.equal(mask, mask_copy) and torch.equal(faces, faces_copy)
