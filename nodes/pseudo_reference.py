"""Stage 1 of SSDiff: the pseudo-reference face (one-stop node and SAMPLER)."""
from __future__ import annotations

import torch
from comfy_api.latest import io

from ..comfy_adapter import sampling
from . import stage_guidance, stage_inputs
from .input_checks import checked_inputs


class SSDiffPseudoReference(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SSDiffPseudoReference",
            display_name="SSDiff Pseudo Reference",
            category="SSDiff",
            description=("Stage 1: samples a clean face with natural colour and the input's lightness "
                         "(weak guidance, scratches ignored). Feed it to SSDiff Sampler as the "
                         "pseudo-reference, with the same seed. Item i of a batch uses seed + i."),
            inputs=[io.Model.Input("model", tooltip="the face DDPM (SSDiff Face Diffusion Loader), or a latent MODEL "
                                                   "with its vae"),
                    *stage_inputs.pseudo_reference_inputs(),
                    *stage_inputs.sampling_inputs(),
                    *stage_inputs.identity_inputs()],
            outputs=[io.Image.Output(display_name="pseudo_reference")],
        )

    @classmethod
    def validate_inputs(cls, s_start: float | None = None, s_end: float | None = None) -> bool | str:
        return stage_inputs.validate_repeat_window(s_start, s_end)

    @classmethod
    @checked_inputs
    def execute(cls, model, image: torch.Tensor, seed: int, steps: int, base_sampler: str, latent_guidance: str,
                cfg: float, reference_compat: bool, scratch_mask: torch.Tensor | None = None, vae=None,
                positive=None, negative=None, face_recognition: torch.nn.Module | None = None,
                reference_faces: torch.Tensor | None = None, **settings) -> io.NodeOutput:
        """`settings`: stage 1's declared settings (PseudoReferenceGuidance: scale, repeats, s_start, s_end)
        and its identity term's (identity_weight)."""
        terms = stage_guidance.identity_terms(image, settings, reference_faces, face_recognition)

        def guidance_at(multiple: int):
            return stage_guidance.pseudo_reference_guidance(image, settings, reference_compat, scratch_mask, terms,
                                                            multiple)

        return io.NodeOutput(stage_guidance.sample_stage(
            model, guidance_at, image, seed, steps, base_sampler, sampling.Conditioning(positive, negative, cfg), vae,
            latent_guidance))


class SSDiffPseudoReferenceSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SSDiffPseudoReferenceSampler",
            display_name="SSDiff Pseudo Reference Sampler",
            category="SSDiff/sampling",
            description=("Stage-1 guidance as a SAMPLER for SamplerCustom / SamplerCustomAdvanced. "
                         "The image must match the latent: the image's size for the face DDPM (pixel "
                         "VAE), 8 x the latent's for SD-type models."),
            inputs=[*stage_inputs.pseudo_reference_inputs(), *stage_inputs.identity_inputs()],
            outputs=[io.Sampler.Output()],
        )

    @classmethod
    def validate_inputs(cls, s_start: float | None = None, s_end: float | None = None) -> bool | str:
        return stage_inputs.validate_repeat_window(s_start, s_end)

    @classmethod
    @checked_inputs
    def execute(cls, image: torch.Tensor, base_sampler: str, latent_guidance: str, reference_compat: bool,
                scratch_mask: torch.Tensor | None = None, vae=None, face_recognition: torch.nn.Module | None = None,
                reference_faces: torch.Tensor | None = None, **settings) -> io.NodeOutput:
        """`settings`: stage 1's declared settings (PseudoReferenceGuidance: scale, repeats, s_start, s_end)
        and its identity term's (identity_weight)."""
        guidance = stage_guidance.pseudo_reference_guidance(
            image, settings, reference_compat, scratch_mask,
            stage_guidance.identity_terms(image, settings, reference_faces, face_recognition))
        return io.NodeOutput(sampling.guided_sampler(guidance, base_sampler, vae, latent_guidance))
