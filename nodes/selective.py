"""Stage 2 of SSDiff: selective guided restoration (one-stop node and SAMPLER)."""
from __future__ import annotations

import torch
from comfy_api.latest import io

from ..comfy_adapter import sampling
from . import stage_guidance, stage_inputs
from .input_checks import checked_inputs


class SSDiffSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SSDiffSampler",
            display_name="SSDiff Sampler",
            category="SSDiff",
            description=("Stage 2: restores the face. Structure comes from the coarse restoration "
                         "outside the (grown) scratches, damaged background from the pseudo-"
                         "reference's local structure above T1, and colour from a target "
                         "transferred at T1. Use the seed of "
                         "SSDiff Pseudo Reference. Item i of a batch uses seed + i."),
            inputs=[io.Model.Input("model", tooltip="the face DDPM (SSDiff Face Diffusion Loader), or a latent MODEL "
                                                   "with its vae"),
                    *stage_inputs.selective_inputs(),
                    *stage_inputs.sampling_inputs(),
                    *stage_inputs.identity_inputs()],
            outputs=[io.Image.Output(display_name="restored")],
        )

    @classmethod
    def validate_inputs(cls, s_start: float | None = None, s_end: float | None = None) -> bool | str:
        return stage_inputs.validate_repeat_window(s_start, s_end)

    @classmethod
    @checked_inputs
    def execute(cls, model, image: torch.Tensor, coarse_restoration: torch.Tensor, pseudo_reference: torch.Tensor,
                seed: int, steps: int, base_sampler: str, latent_guidance: str, cfg: float, reference_compat: bool,
                scratch_mask: torch.Tensor | None = None, parsing: torch.Tensor | None = None,
                colour_reference: torch.Tensor | None = None, colour_transfer=None,
                colour_region: torch.Tensor | None = None, vae=None, positive=None, negative=None,
                face_recognition: torch.nn.Module | None = None, reference_faces: torch.Tensor | None = None,
                **settings) -> io.NodeOutput:
        """`settings`: stage 2's declared settings (SelectiveGuidance: t1, scale, the three weights,
        repeats, s_start, s_end) and its identity term's (identity_weight)."""
        terms = stage_guidance.identity_terms(image, settings, reference_faces, face_recognition)

        def guidance_at(multiple: int):
            return stage_guidance.selective_guidance(
                image, coarse_restoration, pseudo_reference, settings, reference_compat, scratch_mask, parsing,
                colour_reference, colour_transfer, colour_region, terms, multiple)

        return io.NodeOutput(stage_guidance.sample_stage(
            model, guidance_at, image, seed, steps, base_sampler, sampling.Conditioning(positive, negative, cfg), vae,
            latent_guidance))


class SSDiffSelectiveSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SSDiffSelectiveSampler",
            display_name="SSDiff Selective Sampler",
            category="SSDiff/sampling",
            description=("Stage-2 guidance as a SAMPLER for SamplerCustom / SamplerCustomAdvanced, "
                         "to put SSDiff's selective guidance into your own graph (face DDPM, or "
                         "SD-type models with LoRAs). The image must match the latent: the image's "
                         "size for the face DDPM (pixel VAE), 8 x the latent's for SD-type models."),
            inputs=[*stage_inputs.selective_inputs(), *stage_inputs.identity_inputs()],
            outputs=[io.Sampler.Output()],
        )

    @classmethod
    def validate_inputs(cls, s_start: float | None = None, s_end: float | None = None) -> bool | str:
        return stage_inputs.validate_repeat_window(s_start, s_end)

    @classmethod
    @checked_inputs
    def execute(cls, image: torch.Tensor, coarse_restoration: torch.Tensor, pseudo_reference: torch.Tensor,
                base_sampler: str, latent_guidance: str, reference_compat: bool,
                scratch_mask: torch.Tensor | None = None, parsing: torch.Tensor | None = None,
                colour_reference: torch.Tensor | None = None, colour_transfer=None,
                colour_region: torch.Tensor | None = None, vae=None, face_recognition: torch.nn.Module | None = None,
                reference_faces: torch.Tensor | None = None, **settings) -> io.NodeOutput:
        """`settings`: stage 2's declared settings (SelectiveGuidance: t1, scale, the three weights,
        repeats, s_start, s_end) and its identity term's (identity_weight)."""
        guidance = stage_guidance.selective_guidance(
            image, coarse_restoration, pseudo_reference, settings, reference_compat, scratch_mask, parsing,
            colour_reference, colour_transfer, colour_region,
            stage_guidance.identity_terms(image, settings, reference_faces, face_recognition))
        return io.NodeOutput(sampling.guided_sampler(guidance, base_sampler, vae, latent_guidance))
