"""Pseudo-targets from the face diffusion prior (Kuai et al., WACV 2025): training targets for a
fast restorer, sampled from its own coarse restorations (one-stop node and SAMPLER)."""
from __future__ import annotations

import torch
from comfy_api.latest import io

from ..comfy_adapter import sampling
from ..ssdiff_core import pseudo_targets
from ..ssdiff_core.pseudo_targets import PseudoTargetGuidance
from ..ssdiff_core.variant import variant_of
from . import boundary
from .input_checks import checked_inputs


def constraint_inputs() -> list[io.Input]:
    return [
        io.Image.Input("coarse_restoration",
                       tooltip="the fast restorer's output on the degraded face (e.g. SSDiff Coarse Restore)"),
        io.Float.Input("constraint_end", default=pseudo_targets.CONSTRAINT_END, min=0.0, max=1.0, step=0.01,
                       tooltip="while the noise is above this fraction of the schedule, the sample's low "
                               "frequencies are the coarse restoration's (the paper: 90 of 250 steps = 0.36)"),
        io.Int.Input("filter_factor", default=pseudo_targets.FILTER_FACTOR, min=1, max=64,
                     tooltip="the low-pass filter's down-sampling factor: 8 for CodeFormer restorations "
                             "(16 for SwinIR's, in the paper)"),
    ]


class SSDiffPseudoTargets(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SSDiffPseudoTargets",
            display_name="SSDiff Pseudo Targets",
            category="SSDiff/archive",
            description=("Pseudo-targets (Kuai et al., WACV 2025): each coarse restoration diffused to `start` "
                         "of the schedule and sampled back by the face DDPM, its low frequencies held to the "
                         "restoration's while the noise is high. Targets to fine-tune a fast restorer on, "
                         "in (start x steps) network evaluations per face. Item i of a batch uses seed + i."),
            inputs=[
                io.Model.Input("model", tooltip="the face DDPM (SSDiff Face Diffusion Loader)"),
                *constraint_inputs(),
                io.Int.Input("seed", default=4321, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="the noise the restoration is diffused with; item i of a batch uses seed + i"),
                io.Int.Input("steps", default=250, min=1, max=1000,
                             tooltip="respaced DDPM steps of the whole schedule (the paper: 250), of which "
                                     "those below `start` are run"),
                io.Float.Input("start", default=pseudo_targets.START, min=0.01, max=1.0, step=0.01,
                               tooltip="the noise level the restoration is diffused to, as a fraction of the "
                                       "schedule (the paper: 150 of 250 steps = 0.6)"),
                io.Boolean.Input("reference_compat", default=False,
                                 tooltip="as the released sampler: the restoration noised one step above the "
                                         "first step taken"),
            ],
            outputs=[io.Image.Output(display_name="pseudo_target")],
        )

    @classmethod
    @checked_inputs
    def execute(cls, model, coarse_restoration: torch.Tensor, constraint_end: float, filter_factor: int, seed: int,
                steps: int, start: float, reference_compat: bool) -> io.NodeOutput:
        plan = sampling.plan_pseudo_targets(model)
        coarse = boundary.image_to_model(coarse_restoration)
        guidance = PseudoTargetGuidance(boundary.pad_to_multiple(coarse, plan.multiple), constraint_end, filter_factor)
        targets = sampling.sample_pseudo_targets(model, guidance, plan, seed, steps, start,
                                                 variant_of(reference_compat))
        height, width = coarse.shape[-2:]
        return io.NodeOutput(boundary.model_to_image(targets[..., :height, :width]))


class SSDiffPseudoTargetSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SSDiffPseudoTargetSampler",
            display_name="SSDiff Pseudo Target Sampler",
            category="SSDiff/sampling",
            description=("The pseudo-target constraint as a SAMPLER for SamplerCustom / SamplerCustomAdvanced "
                         "with the face DDPM: give it the coarse restoration encoded by the pixel VAE as the "
                         "latent and the schedule's lower part as sigmas (e.g. BasicScheduler with denoise "
                         "0.6), so that ComfyUI diffuses the restoration to the start itself."),
            inputs=constraint_inputs(),
            outputs=[io.Sampler.Output()],
        )

    @classmethod
    @checked_inputs
    def execute(cls, coarse_restoration: torch.Tensor, constraint_end: float, filter_factor: int) -> io.NodeOutput:
        guidance = PseudoTargetGuidance(boundary.image_to_model(coarse_restoration), constraint_end, filter_factor)
        return io.NodeOutput(sampling.guided_sampler(guidance))
