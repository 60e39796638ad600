"""The pack's nodes inside the real ComfyUI, in-process: loading, ComfyUI's own samplers on the
face DDPM, and the guided sampler's documented behaviour."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from safetensors.torch import save_file

from node_runner import execute
from comfyui_ssdiff.ssdiff_core.guidance import PseudoReferenceGuidance
from comfyui_ssdiff.ssdiff_core.sampler import sample_ssdiff
from stage_settings import ONE_STOP_SETTINGS, PSEUDO_REFERENCE_SETTINGS, SELECTIVE_SETTINGS
from harness.tiny_models import TINY_FACE_UNET, tiny_face_unet



@pytest.fixture(scope="module")
def face_model(comfy):
    model, vae = execute(comfy, "SSDiffFaceDiffusionLoader", ckpt_name="tiny_face_ddpm.pth", weight_dtype="fp32")
    return model, vae


def synthetic_faces(batch: int = 1, height: int = 32, width: int = 32, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, height, width, 3, generator=generator)


def scratch_mask(batch: int = 1, height: int = 32, width: int = 32) -> torch.Tensor:
    mask = torch.zeros(batch, height, width)
    mask[:, height // 2, :] = 1.0
    mask[:, height // 2 + 1, : width // 2] = 0.3
    return mask


def stage1_inputs(image, seed=7, steps=4, **extra):
    return {"image": image, **PSEUDO_REFERENCE_SETTINGS, **ONE_STOP_SETTINGS, "seed": seed, "steps": steps, **extra}


def stage2_inputs(image, pseudo_reference, seed=7, steps=4, **extra):
    return {"image": image, "coarse_restoration": image, "pseudo_reference": pseudo_reference,
            **SELECTIVE_SETTINGS, **ONE_STOP_SETTINGS, "seed": seed, "steps": steps, **extra}


def test_in_process_start_up_runs_every_extension_entrypoint_as_main_py_does(comfy):
    from conftest import COMFY_START_UP_LOG
    failed = [message for message in COMFY_START_UP_LOG.messages
              if "Error while calling comfy_entrypoint" in message or
              ("IMPORT FAILED" in message and "ComfyUI-SSDiff" in message)]
    assert not failed, failed


def test_loader_reads_pth_with_module_prefix_and_safetensors(comfy, face_model):
    model, vae = face_model
    network = model.get_model_object("diffusion_model")
    # ComfyUI imports the pack under its own module name: compare field by field.
    assert dataclasses.asdict(network.config) == dataclasses.asdict(TINY_FACE_UNET)
    expected = tiny_face_unet(seed=0).state_dict()
    for key, value in network.state_dict().items():
        assert torch.equal(value, expected[key]), key
    other, _ = execute(comfy, "SSDiffFaceDiffusionLoader", ckpt_name="tiny_face_ddpm.safetensors",
                       weight_dtype="fp32")
    assert torch.equal(other.get_model_object("diffusion_model").out[2].weight,
                       tiny_face_unet(seed=1).out[2].weight)
    assert model.model.latent_format.latent_channels == 3
    assert vae.latent_channels == 3


def test_loader_names_missing_file_folder_and_source(comfy, models_root):
    message = comfy.NODE_CLASS_MAPPINGS["SSDiffFaceDiffusionLoader"].validate_inputs(ckpt_name="missing.pth")
    assert isinstance(message, str)
    assert "missing.pth" in message and "iddpm_ffhq512_ema500000.pth" in message
    assert str(models_root / "ssdiff") in message and "DifFace" in message


def test_loader_refuses_another_architecture(comfy, models_root):
    save_file({"conv_in.weight": torch.zeros(4, 4, 3, 3)}, str(models_root / "ssdiff" / "not_a_ddpm.safetensors"))
    with pytest.raises(ValueError, match="not a guided-diffusion face DDPM.*conv_in.weight"):
        execute(comfy, "SSDiffFaceDiffusionLoader", ckpt_name="not_a_ddpm.safetensors", weight_dtype="fp32")


def test_comfyui_ksampler_samples_the_face_ddpm_unguided(comfy, face_model):
    model, vae = face_model
    conditioning, = execute(comfy, "SSDiffUnconditional")
    latent, = execute(comfy, "VAEEncode", pixels=synthetic_faces(), vae=vae)
    assert latent["samples"].shape == (1, 3, 32, 32)
    samples, = execute(comfy, "KSampler", model=model, seed=1, steps=4, cfg=1.0, sampler_name="ddpm",
                       scheduler="simple", positive=conditioning, negative=conditioning,
                       latent_image=latent, denoise=1.0)
    image, = execute(comfy, "VAEDecode", samples=samples, vae=vae)
    assert image.shape == (1, 32, 32, 3)
    assert torch.isfinite(image).all() and 0 <= image.min() and image.max() <= 1


@pytest.mark.parametrize("base_sampler", ["ddpm_learned_variance", "euler", "euler_ancestral", "heun",
                                          "dpm_2", "dpm_2_ancestral", "dpmpp_2s_ancestral"])
def test_sampler_custom_runs_ssdiff_guidance(comfy, face_model, base_sampler):
    model, vae = face_model
    faces = synthetic_faces()
    conditioning, = execute(comfy, "SSDiffUnconditional")
    sampler, = execute(comfy, "SSDiffSelectiveSampler", image=faces, coarse_restoration=faces,
                       pseudo_reference=faces, scratch_mask=scratch_mask(),
                       **{**SELECTIVE_SETTINGS, "base_sampler": base_sampler})
    sigmas, = execute(comfy, "BasicScheduler", model=model, scheduler="simple", steps=5, denoise=1.0)
    latent, = execute(comfy, "VAEEncode", pixels=faces, vae=vae)
    output, denoised = execute(comfy, "SamplerCustom", model=model, add_noise=True, noise_seed=3, cfg=1.0,
                               positive=conditioning, negative=conditioning, sampler=sampler,
                               sigmas=sigmas, latent_image=latent)
    image, = execute(comfy, "VAEDecode", samples=output, vae=vae)
    assert image.shape == (1, 32, 32, 3) and torch.isfinite(image).all()


def guided_records(model, guidance, shape, steps=4, seed=0):
    """Runs the core sampler on the MODEL and returns the StepRecord of every step."""
    discrete_sigmas = model.get_model_object("model_sampling").sigmas.double()
    sigmas = torch.cat([discrete_sigmas[torch.linspace(999, 0, steps).round().long()].float(), torch.zeros(1)])
    records = []

    def apply(x, sigma, model_options=None, seed=None, **_):
        return model.model.apply_model(x, sigma, transformer_options=model_options["transformer_options"])

    noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    with torch.inference_mode():
        sample_ssdiff(apply, noise * (1 + sigmas[0] ** 2).sqrt(), sigmas, {"model_options": {}, "seed": seed},
                      callback=lambda info: records.append(info["ssdiff"]), guidance=guidance,
                      discrete_sigmas=discrete_sigmas)
    return records


def test_correction_has_the_documented_norm_and_spares_scratches(face_model):
    model, _ = face_model
    degraded = synthetic_faces(batch=2).movedim(-1, 1) * 2 - 1
    scratch = scratch_mask(batch=2).unsqueeze(1)
    guidance = PseudoReferenceGuidance(degraded=degraded, scratch=scratch, scale=0.01)
    for record in guided_records(model, guidance, (2, 3, 32, 32)):
        step = record.x_t - record.x_unguided
        correction = record.x_prev - record.x_unguided
        for image in range(2):
            for channel in range(3):
                expected = guidance.scale * step[image, channel].norm()
                assert torch.isclose(correction[image, channel].norm(), expected, rtol=1e-4)
        on_scratch = (scratch > 0).expand_as(record.gradient)
        assert (record.gradient[on_scratch] == 0).all()
        assert torch.equal(record.x_prev[on_scratch], record.x_unguided[on_scratch])
        assert (record.gradient[~on_scratch] != 0).any()


def test_same_seed_same_output_and_new_seed_new_output(comfy, face_model):
    model, _ = face_model
    faces = synthetic_faces()
    first, = execute(comfy, "SSDiffPseudoReference", model=model, **stage1_inputs(faces, seed=11))
    again, = execute(comfy, "SSDiffPseudoReference", model=model, **stage1_inputs(faces, seed=11))
    other, = execute(comfy, "SSDiffPseudoReference", model=model, **stage1_inputs(faces, seed=12))
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


def test_a_batch_of_two_equals_two_runs_of_one(comfy, face_model):
    model, _ = face_model
    faces = synthetic_faces(batch=2, seed=3)
    masks = scratch_mask(batch=2)
    batch, = execute(comfy, "SSDiffPseudoReference", model=model,
                     **stage1_inputs(faces, seed=20, scratch_mask=masks))
    restored, = execute(comfy, "SSDiffSampler", model=model,
                        **stage2_inputs(faces, batch, seed=20, scratch_mask=masks))
    for index in range(2):
        face, mask = faces[index:index + 1], masks[index:index + 1]
        single, = execute(comfy, "SSDiffPseudoReference", model=model,
                          **stage1_inputs(face, seed=20 + index, scratch_mask=mask))
        assert torch.allclose(single, batch[index:index + 1], atol=1e-5)
        single_restored, = execute(comfy, "SSDiffSampler", model=model,
                                   **stage2_inputs(face, single, seed=20 + index, scratch_mask=mask))
        assert torch.allclose(single_restored, restored[index:index + 1], atol=1e-5)


@pytest.mark.parametrize("channels", [1, 4])
def test_any_size_grayscale_and_rgba_come_back_at_their_size(comfy, face_model, channels):
    model, _ = face_model
    face = torch.rand(1, 30, 21, channels)
    pseudo, = execute(comfy, "SSDiffPseudoReference", model=model,
                      **stage1_inputs(face, scratch_mask=scratch_mask(1, 30, 21)))
    assert pseudo.shape == (1, 30, 21, 3)
    parsing, = execute(comfy, "SSDiffLabelMapToParsing", label_map=torch.full((1, 30, 21, 3), 1 / 255))
    restored, = execute(comfy, "SSDiffSampler", model=model,
                        **stage2_inputs(face, pseudo, scratch_mask=scratch_mask(1, 30, 21), parsing=parsing))
    assert restored.shape == (1, 30, 21, 3) and torch.isfinite(restored).all()


def test_label_map_refuses_a_colour_preview(comfy):
    with pytest.raises(ValueError, match="CelebAMask-HQ ids run from 0 to 18"):
        execute(comfy, "SSDiffLabelMapToParsing", label_map=torch.full((1, 8, 8, 3), 0.5))


STAGE_NODES = {"SSDiffPseudoReference": "PseudoReferenceGuidance",
               "SSDiffPseudoReferenceSampler": "PseudoReferenceGuidance", "SSDiffSampler": "SelectiveGuidance", "SSDiffSelectiveSampler": "SelectiveGuidance",
               "SSDiffIterate": "SelectiveGuidance"}


@pytest.mark.parametrize("node_id, stage", sorted(STAGE_NODES.items()))
def test_every_stage_setting_of_a_node_comes_from_the_cores_one_declaration(comfy, pack, node_id, stage):
    """Name, default, range, step and tooltip of each setting widget are the core's declaration,
    in the declaration's order (the workflows' widget order), and the node has no other widget of
    the stage's settings."""
    declared = pack.ssdiff_core.settings.declared(getattr(pack.ssdiff_core.guidance, stage))
    assert declared and len({entry.name for entry in declared}) == len(declared)
    inputs = [spec for spec in comfy.NODE_CLASS_MAPPINGS[node_id].define_schema().inputs]
    widgets = {spec.id: spec for spec in inputs}
    for entry in declared:
        spec = widgets[entry.name]
        assert (spec.default, spec.min, spec.max, spec.tooltip) == (entry.default, entry.minimum, entry.maximum,
                                                                    entry.tooltip), entry.name
        assert getattr(spec, "step", None) == entry.step or isinstance(entry.default, int), entry.name
    names = [spec.id for spec in inputs]
    positions = [names.index(entry.name) for entry in declared]
    assert positions == list(range(positions[0], positions[0] + len(declared))), "declared settings stay together"


def test_a_new_setting_declared_on_a_stage_reaches_its_widgets_and_its_guidance(pack):
    """Adding a guidance term's weight is one declaration: the widget and the stage built from a
    node's values follow from it."""
    settings, guidance = pack.ssdiff_core.settings, pack.ssdiff_core.guidance

    @dataclasses.dataclass(frozen=True)
    class WithDummyTerm(guidance.SelectiveGuidance):
        dummy_weight: float = settings.setting(0.5, 0.0, 2.0, "a dummy term", 0.1)

    widgets = pack.nodes.stage_inputs.setting_inputs(WithDummyTerm)
    assert [spec.id for spec in widgets][-1] == "dummy_weight" and widgets[-1].default == 0.5
    values = {entry.name: entry.default for entry in settings.declared(WithDummyTerm)} | {"dummy_weight": 1.5,
                                                                                         "s_end": 0.5}
    built = settings.setting_values(WithDummyTerm, values)
    assert built["dummy_weight"] == 1.5 and built["repeat"].end == 0.5 and built["t1"] == 0.4
    with pytest.raises(TypeError, match="declares no setting bogus"):
        settings.setting_values(WithDummyTerm, {"bogus": 1})


