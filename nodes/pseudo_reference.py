"""Stage 1 of SSDiff: the pseudo-reference face (one-stop node and SAMPLER)."""
from __future__ import annotations

import torch
from comfy_api.latest import io

from ..ssdiff_core import host
from . import guidance_inputs


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
            inputs=[io.Model.Input("model"), *guidance_inputs.pseudo_reference_inputs(),
                    *guidance_inputs.sampling_inputs()],
            outputs=[io.Image.Output(display_name="pseudo_reference")],
        )

    @classmethod
    def validate_inputs(cls, s_start: float, s_end: float) -> bool | str:
        return guidance_inputs.validate_repeat_window(s_start, s_end)

    @classmethod
    def execute(cls, model, image: torch.Tensor, scale: float, repeats: int, s_start: float,
                s_end: float, base_sampler: str, reference_compat: bool, seed: int, steps: int,
                scratch_mask: torch.Tensor | None = None) -> io.NodeOutput:
        guidance = guidance_inputs.pseudo_reference_guidance(
            image, scale, repeats, s_start, s_end, reference_compat, scratch_mask,
            pad_multiple=host.downsampling_factor(model))
        return io.NodeOutput(guidance_inputs.sample_face(model, guidance, image, seed, steps, base_sampler))


class SSDiffPseudoReferenceSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SSDiffPseudoReferenceSampler",
            display_name="SSDiff Pseudo Reference Sampler",
            category="SSDiff/sampling",
            description=("Stage-1 guidance as a SAMPLER for SamplerCustom / SamplerCustomAdvanced. "
                         "The latent must have the image's size (pixel-space VAE)."),
            inputs=guidance_inputs.pseudo_reference_inputs(),
            outputs=[io.Sampler.Output()],
        )

    @classmethod
    def validate_inputs(cls, s_start: float, s_end: float) -> bool | str:
        return guidance_inputs.validate_repeat_window(s_start, s_end)

    @classmethod
    def execute(cls, image: torch.Tensor, scale: float, repeats: int, s_start: float, s_end: float,
                base_sampler: str, reference_compat: bool,
                scratch_mask: torch.Tensor | None = None) -> io.NodeOutput:
        guidance = guidance_inputs.pseudo_reference_guidance(
            image, scale, repeats, s_start, s_end, reference_compat, scratch_mask)
        return io.NodeOutput(host.guided_sampler(guidance, base_sampler))
