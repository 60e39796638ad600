"""Identity guidance in the real host (issue 30): reference faces of the same person and an ArcFace
network (random weights of the real architecture, loaded from its file) pull the restored face's
embedding towards the references'; weight 0 or no references leave every stage bit-identical;
what cannot be used is refused naming the input."""
from __future__ import annotations

import json

import pytest
import torch

from node_runner import execute
from stage_settings import ONE_STOP_SETTINGS, PSEUDO_REFERENCE_SETTINGS, SELECTIVE_SETTINGS

SIZE = 64


@pytest.fixture(scope="module")
def setup(comfy):
    model, _ = execute(comfy, "SSDiffFaceDiffusionLoader", ckpt_name="tiny_face_ddpm.pth", weight_dtype="fp32")
    recognition, = execute(comfy, "SSDiffFaceRecognitionLoader", model_name="recognition_arcface_ir_se50.pth")
    generator = torch.Generator().manual_seed(5)
    image = torch.rand(1, SIZE, SIZE, 3, generator=generator)
    references = torch.rand(3, SIZE, SIZE, 3, generator=generator)
    return model, recognition, image, references


def selective(model, image, seed=2, steps=2, **extra):
    return {"model": model, "image": image, "coarse_restoration": image, "pseudo_reference": image,
            **SELECTIVE_SETTINGS, **ONE_STOP_SETTINGS, "seed": seed, "steps": steps, **extra}


def pseudo_reference(model, image, seed=2, steps=2, **extra):
    return {"model": model, "image": image, **PSEUDO_REFERENCE_SETTINGS, **ONE_STOP_SETTINGS, "seed": seed,
            "steps": steps, **extra}


@pytest.mark.parametrize("node, inputs", [("SSDiffSampler", selective), ("SSDiffPseudoReference", pseudo_reference)])
def test_weight_zero_or_no_references_leave_the_stage_bit_identical(comfy, setup, node, inputs):
    model, recognition, image, references = setup
    plain, = execute(comfy, node, **inputs(model, image))
    off, = execute(comfy, node, **inputs(model, image, face_recognition=recognition, reference_faces=references,
                                         identity_weight=0.0))
    no_references, = execute(comfy, node, **inputs(model, image, face_recognition=recognition))
    assert torch.equal(off, plain) and torch.equal(no_references, plain)
    guided, = execute(comfy, node, **inputs(model, image, face_recognition=recognition, reference_faces=references))
    assert not torch.equal(guided, plain)


def test_the_term_brings_the_restored_face_closer_to_the_references_over_seeds(comfy, setup):
    """Same seed with and without the term; the term dominates the stage (scale 0.2, identity
    weight 10^5) so that three steps of the tiny model show it; SSDiff Identity Angle measures."""
    model, recognition, image, references = setup
    strong = {"scale": 0.2, "identity_weight": 100000.0}
    closer = []
    for seed in (1, 2, 3):
        plain, = execute(comfy, "SSDiffSampler", **selective(model, image, seed=seed, scale=0.2))
        guided, = execute(comfy, "SSDiffSampler", **selective(model, image, seed=seed, face_recognition=recognition,
                                                              reference_faces=references, **strong))
        before, _ = execute(comfy, "SSDiffIdentityAngle", face_recognition=recognition, faces=plain,
                            reference_faces=references)
        after, angles = execute(comfy, "SSDiffIdentityAngle", face_recognition=recognition, faces=guided,
                                reference_faces=references)
        assert json.loads(angles)["angles"] == [pytest.approx(after)]
        closer.append(before - after)
    assert all(gain > 0 for gain in closer), closer


def test_references_of_one_or_many_grayscale_or_rgba_and_a_batch_of_faces(comfy, setup):
    """Grayscale references are their RGB repeat, RGBA references their RGB; one reference or many
    give one identity, which every face of a batch is guided towards."""
    model, recognition, image, references = setup
    terms = comfy_stage_guidance(comfy).identity_terms
    settings = {"identity_weight": 1.0}
    gray = references[..., :1]
    rgba = torch.cat([references, torch.ones_like(references[..., :1])], dim=-1)
    for given, same_as in ((gray, gray.expand(-1, -1, -1, 3)), (rgba, references), (references[:1], references[:1])):
        term, = terms(image, settings, given, recognition)
        expected, = terms(image, settings, same_as, recognition)
        assert term.reference.shape == (512,) and torch.allclose(term.reference, expected.reference, atol=1e-6)
    # references of another size than the face (smooth faces at 64 and 128 px): each is re-aligned
    # from its own size onto the same template
    smooth = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(9))

    def at(side: int) -> torch.Tensor:
        return torch.nn.functional.interpolate(smooth, size=(side, side), mode="bicubic",
                                               align_corners=False).clamp(0, 1).movedim(1, -1)

    term, = terms(image, settings, at(128), recognition)
    expected, = terms(image, settings, at(SIZE), recognition)
    assert float(term.reference @ expected.reference) > 0.99
    batch = torch.cat([image, image.flip(1)])
    restored, = execute(comfy, "SSDiffSampler", **selective(model, batch, steps=1, face_recognition=recognition,
                                                            reference_faces=references))
    assert restored.shape == batch.shape and torch.isfinite(restored).all()


def comfy_stage_guidance(comfy):
    """The pack's stage_guidance module as ComfyUI imported it."""
    import sys
    node = comfy.NODE_CLASS_MAPPINGS["SSDiffSampler"]
    return sys.modules[node.__module__.rsplit(".", 1)[0] + ".stage_guidance"]


def test_the_selective_sampler_for_sampler_custom_takes_the_same_inputs(comfy, setup):
    model, recognition, image, references = setup
    _, vae = execute(comfy, "SSDiffFaceDiffusionLoader", ckpt_name="tiny_face_ddpm.pth", weight_dtype="fp32")
    conditioning, = execute(comfy, "SSDiffUnconditional")
    sigmas, = execute(comfy, "BasicScheduler", model=model, scheduler="simple", steps=2, denoise=1.0)
    latent, = execute(comfy, "VAEEncode", pixels=image, vae=vae)
    outputs = []
    for identity in ({}, {"face_recognition": recognition, "reference_faces": references}):
        sampler, = execute(comfy, "SSDiffSelectiveSampler", image=image, coarse_restoration=image,
                           pseudo_reference=image, **SELECTIVE_SETTINGS, **identity)
        output, _ = execute(comfy, "SamplerCustom", model=model, add_noise=True, noise_seed=3, cfg=1.0,
                            positive=conditioning, negative=conditioning, sampler=sampler, sigmas=sigmas,
                            latent_image=latent)
        outputs.append(output["samples"])
    assert not torch.equal(*outputs)


@pytest.mark.parametrize("change, message", [
    ({"face_recognition": None}, "reference_faces are measured by a face recognition network"),
    ({"reference_faces": torch.rand(1, SIZE, SIZE + 8, 3)}, r"reference_faces are 72 x 64 px, not aligned faces"),
    ({"image": torch.rand(1, SIZE, SIZE + 8, 3)}, r"identity guidance compares aligned faces.*image is 72 x 64"),
])
def test_what_cannot_be_used_is_refused_naming_the_input(comfy, setup, change, message):
    model, recognition, image, references = setup
    inputs = selective(model, image, face_recognition=recognition, reference_faces=references)
    inputs.update(change)
    if inputs["face_recognition"] is None:
        del inputs["face_recognition"]
    with pytest.raises(ValueError, match=message):
        execute(comfy, "SSDiffSampler", **inputs)


def test_face_crop_refuses_a_reference_photo_without_a_face_when_asked(comfy):
    detector, = execute(comfy, "SSDiffFaceDetectorLoader", model_name="detection_mobilenet0.25_Final.pth")
    blank = torch.full((2, 96, 96, 3), 0.5)
    faces, _, _ = execute(comfy, "SSDiffFaceCrop", detector=detector, image=blank, crop_size=64, selection="largest",
                          index=0, min_eye_distance=10.0, confidence=0.0)
    assert faces.shape == (2, 64, 64, 3)
    with pytest.raises(ValueError, match="no usable face in photo 0.*no_face is 'refuse'"):
        execute(comfy, "SSDiffFaceCrop", detector=detector, image=blank, crop_size=64, selection="largest", index=0,
                min_eye_distance=10.0, confidence=0.0, no_face="refuse")
    assert "no_face must be one of" in comfy.NODE_CLASS_MAPPINGS["SSDiffFaceCrop"].validate_inputs(no_face="skip")


def test_iterate_reports_the_angle_to_the_references_each_round(comfy, setup):
    model, recognition, image, references = setup
    _, every_round, _, report = execute(comfy, "SSDiffIterate", rounds=2, min_change=0.0, face_recognition=recognition,
                                        reference_faces=references, coarse_restoration=image,
                                        **{k: v for k, v in selective(model, image, steps=1).items()
                                           if k != "coarse_restoration"})
    angles = json.loads(report)["identity_angles_to_references"]
    assert len(angles) == 2
    for round_image, angle in zip(every_round, angles):
        measured, _ = execute(comfy, "SSDiffIdentityAngle", face_recognition=recognition, faces=round_image[None],
                              reference_faces=references)
        assert angle == pytest.approx(measured, abs=1e-3)


def test_the_family_album_workflow_runs_end_to_end_through_the_server(server):
    """The shipped workflow on the bundled photo (MTCNN finds its face; the other networks are the
    tiny random ones): the restored photo is written and the identity angle is shown."""
    from test_server import shipped_workflow
    from comfyui_ssdiff.models import mtcnn

    prompt = shipped_workflow(server, "family_album_restoration_api.json", steps=2, crop_size=64)
    prompt["2"]["inputs"]["model_name"] = mtcnn.CHOICE
    entry = server.run(prompt)
    images = server.output_images(entry)
    assert [path.name.split("_0")[0] for path in images] == ["family_album_restored"]
    shown = entry["outputs"]["19"]["text"][0]
    assert shown.startswith("identity angle to the references: ") and "degrees" in shown
