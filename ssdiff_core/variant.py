"""Which SSDiff the pack follows: the paper (`ssdiff-method.md`, the default) or the authors'
released code, defects included (`reference_compat`). One policy object that the stages, the
priors run for them and the pseudo-targets hold, so that nothing branches on a bare flag."""
from __future__ import annotations

from dataclasses import dataclass

from .schedule import StepTime


@dataclass(frozen=True)
class MethodVariant:
    integer_timesteps: bool
    """Step times and stage boundaries on whole timesteps, T1 by exact equality (released code),
    or on the fractional position of each respaced step (any step count keeps its stages)."""
    per_image_norms: bool
    """The normalised correction's norms per image (paper) or over the whole batch (released)."""
    stage1_channel_norms_in_repeats: bool
    """Stage 1 keeps per-channel norms in the repeat loop (paper) or only in its first pass."""
    reference_term: bool
    """Stage 2's reference-structure term counts (paper) or is inert (released: its x0 is not
    differentiable)."""
    colour_target_at_first_step_below_t1: bool
    """Stage 2 builds the colour target at the first step at or below T1 (paper), or only at a
    step exactly on T1 (released: lost when no step lands there)."""
    colour_transfer_on_whole_images: bool
    """The released code whitens the colour-free regions of both images and transfers the whole
    images; the paper transfers the statistics of the face region."""
    colour_network_unclamped: bool
    """CAP-VSTNet gets the [-1, 1] images as they are and its output is used unclamped (released
    code), or [0, 1] images as it was trained on, its output clamped (paper's intent)."""
    parser_input_unnormalised: bool
    """The BiSeNet-ResNet parser gets the [-1, 1] image without ImageNet normalisation (released
    code), or normalised as it was trained."""
    pseudo_target_noised_above_first_step: bool
    """Pseudo-targets: the coarse restoration noised to the grid's level one step above the first
    step taken (the released sampler's off-by-one), or to that first step's level."""

    def step_time(self, timestep: float, num_timesteps: int) -> StepTime:
        """Where a step at `timestep` of the original schedule sits, as this variant counts."""
        return StepTime(round(timestep) if self.integer_timesteps else timestep, num_timesteps,
                        self.integer_timesteps)


PAPER = MethodVariant(integer_timesteps=False, per_image_norms=True, stage1_channel_norms_in_repeats=True,
                      reference_term=True, colour_target_at_first_step_below_t1=True,
                      colour_transfer_on_whole_images=False, colour_network_unclamped=False,
                      parser_input_unnormalised=False, pseudo_target_noised_above_first_step=False)
RELEASED_CODE = MethodVariant(integer_timesteps=True, per_image_norms=False, stage1_channel_norms_in_repeats=False,
                              reference_term=False, colour_target_at_first_step_below_t1=False,
                              colour_transfer_on_whole_images=True, colour_network_unclamped=True,
                              parser_input_unnormalised=True, pseudo_target_noised_above_first_step=True)


def variant_of(reference_compat: bool) -> MethodVariant:
    return RELEASED_CODE if reference_compat else PAPER
