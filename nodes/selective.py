"""Stage 2 of SSDiff: selective guided restoration (one-stop node and SAMPLER)."""
from __future__ import annotations

import torch
from comfy_api.latest import io

from ..ssdiff_core import host
from . import guidance_inputs


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
            inputs=[io.Model.Input("model"), *guidance_inputs.selective_inputs(),
                    *guidance_inputs.sampling_inputs()],
            outputs=[io.Image.Output(display_name="restored")],
        )

    @classmethod
    def validate_inputs(cls, s_start: float, s_end: float) -> bool | str:
        return guidance_inputs.validate_repeat_window(s_start, s_end)

    @classmethod
    def execute(cls, model, image: torch.Tensor, coarse_restoration: torch.Tensor,
                pseudo_reference: torch.Tensor, t1: float, scale: float, structure_weight: float,
                reference_weight: float, colour_weight: float, repeats: int, s_start: float,
                s_end: float, base_sampler: str, reference_compat: bool, seed: int, steps: int,
                scratch_mask: torch.Tensor | None = None, parsing: torch.Tensor | None = None,
                colour_reference: torch.Tensor | None = None, colour_transfer=None) -> io.NodeOutput:
        guidance = guidance_inputs.selective_guidance(
            image, coarse_restoration, pseudo_reference, t1, scale, structure_weight,
            reference_weight, colour_weight, repeats, s_start, s_end, reference_compat,
            scratch_mask, parsing, colour_reference, colour_transfer,
            pad_multiple=host.downsampling_factor(model))
        return io.NodeOutput(guidance_inputs.sample_face(model, guidance, image, seed, steps, base_sampler))


class SSDiffSelectiveSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SSDiffSelectiveSampler",
            display_name="SSDiff Selective Sampler",
            category="SSDiff/sampling",
            description=("Stage-2 guidance as a SAMPLER for SamplerCustom / SamplerCustomAdvanced, "
                         "to put SSDiff's selective guidance into your own graph. The latent must "
                         "have the image's size (pixel-space VAE)."),
            inputs=guidance_inputs.selective_inputs(),
            outputs=[io.Sampler.Output()],
        )

    @classmethod
    def validate_inputs(cls, s_start: float, s_end: float) -> bool | str:
        return guidance_inputs.validate_repeat_window(s_start, s_end)

    @classmethod
    def execute(cls, image: torch.Tensor, coarse_restoration: torch.Tensor,
                pseudo_reference: torch.Tensor, t1: float, scale: float, structure_weight: float,
                reference_weight: float, colour_weight: float, repeats: int, s_start: float,
                s_end: float, base_sampler: str, reference_compat: bool,
                scratch_mask: torch.Tensor | None = None,
                parsing: torch.Tensor | None = None, colour_reference: torch.Tensor | None = None,
                colour_transfer=None) -> io.NodeOutput:
        guidance = guidance_inputs.selective_guidance(
            image, coarse_restoration, pseudo_reference, t1, scale, structure_weight,
            reference_weight, colour_weight, repeats, s_start, s_end, reference_compat,
            scratch_mask, parsing, colour_reference, colour_transfer)
        return io.NodeOutput(host.guided_sampler(guidance, base_sampler))
