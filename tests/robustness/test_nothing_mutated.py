"""In-process: the nodes leave their inputs alone (image and mask tensors, the MODEL's weights and
model_options, the prior networks' weights), so a cached upstream output is never changed behind
ComfyUI's back."""
from __future__ import annotations

import pytest
import torch

from stage_settings import PSEUDO_REFERENCE_SETTINGS
from node_runner import execute
from test_host_nodes import scratch_mask, stage1_inputs, stage2_inputs, synthetic_faces


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


def network_weights(network: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in network.state_dict().items()}


def assert_same_weights(network: torch.nn.Module, before: dict[str, torch.Tensor]) -> None:
    after = network.state_dict()
    assert set(after) == set(before) and all(torch.equal(after[key], value) for key, value in before.items())


def test_sampler_nodes_in_sampler_custom_leave_latent_image_and_model_unchanged(comfy, model):
    faces, mask = synthetic_faces(seed=6), scratch_mask()
    copies, before = (faces.clone(), mask.clone()), snapshot(model)
    _, vae = execute(comfy, "SSDiffFaceDiffusionLoader", ckpt_name="tiny_face_ddpm.pth", weight_dtype="fp32")
    conditioning, = execute(comfy, "SSDiffUnconditional")
    latent, = execute(comfy, "VAEEncode", pixels=faces, vae=vae)
    latent_copy = latent["samples"].clone()
    sigmas, = execute(comfy, "BasicScheduler", model=model, scheduler="simple", steps=3, denoise=1.0)
    sampler, = execute(comfy, "SSDiffPseudoReferenceSampler", image=faces, scratch_mask=mask,
                       **PSEUDO_REFERENCE_SETTINGS)
    execute(comfy, "SamplerCustom", model=model, add_noise=True, noise_seed=3, cfg=1.0, positive=conditioning,
            negative=conditioning, sampler=sampler, sigmas=sigmas, latent_image=latent)
    assert torch.equal(latent["samples"], latent_copy)
    assert torch.equal(faces, copies[0]) and torch.equal(mask, copies[1])
    assert_model_unchanged(model, before)


def test_prior_nodes_leave_their_inputs_and_networks_unchanged(comfy):
    faces, region = synthetic_faces(seed=7), scratch_mask()
    style = synthetic_faces(seed=8)
    label_map = torch.full((1, 32, 32, 3), 1 / 255)
    copies = faces.clone(), region.clone(), style.clone(), label_map.clone()
    parser, = execute(comfy, "SSDiffFaceParserLoader", model_name="resnet34.pt")
    restorer, = execute(comfy, "SSDiffFaceRestorerLoader", model_name="codeformer.pth")
    transfer, = execute(comfy, "SSDiffColourTransferLoader", model_name="photo_image.pt")
    networks = [(network, network_weights(network)) for network in (parser.network, restorer.network)]

    execute(comfy, "SSDiffFaceParse", parser=parser, image=faces, regions="face", reference_compat=False)
    execute(comfy, "SSDiffLabelMapToParsing", label_map=label_map)
    execute(comfy, "SSDiffCoarseRestore", restorer=restorer, image=faces, fidelity=0.5)
    recoloured = [execute(comfy, "SSDiffColourTransfer", content=faces, style=style, region=region,
                          colour_transfer=transfer)[0] for _ in range(2)]

    for tensor, copy in zip((faces, region, style, label_map), copies):
        assert torch.equal(tensor, copy)
    for network, before in networks:
        assert_same_weights(network, before)
    assert torch.equal(*recoloured)  # the transfer network (inside a closure) was not changed by its first use
