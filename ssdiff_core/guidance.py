"""SSDiff's two guidance stages. Each is an immutable description (safe to cache and reuse);
`start()` gives the per-run state that turns an x0 estimate into the guidance gradient g. Each
holds the MethodVariant it follows: the paper, or the authors' released code."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from . import losses
from .colour_transfer import ColourTransfer, masked_mean_std_transfer
from .ddpm import Transition
from .masks import SelectiveMasks
from .pixel_space import IdentityMap, PixelMap, ToPixels, latent_resolution
from .schedule import RepeatWindow, StepTime
from .settings import setting
from .variant import PAPER, MethodVariant


def _loss_gradient(x0h: torch.Tensor, to_pixels: ToPixels, loss_of_pixels) -> torch.Tensor:
    """d loss / d x0h with x0h as a leaf, the loss written on to_pixels(x0h). ComfyUI runs nodes
    under inference_mode, which records no graph; the loss is built outside it, on a copy."""
    with torch.inference_mode(False), torch.enable_grad():
        x0 = x0h.detach().clone().requires_grad_(True)
        gradient, = torch.autograd.grad(loss_of_pixels(to_pixels(x0)), x0)
    return gradient


def _decoded(x0h: torch.Tensor, to_pixels: ToPixels) -> torch.Tensor:
    with torch.inference_mode(False), torch.no_grad():
        return to_pixels(x0h.detach().clone())


def _normal_tensor(tensor: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A copy usable by autograd (not an inference tensor) on `like`'s device and dtype."""
    with torch.inference_mode(False):
        dtype = like.dtype if tensor.is_floating_point() else tensor.dtype
        return tensor.to(device=like.device, dtype=dtype).clone()


def _batched(tensor: torch.Tensor, batch: int, name: str) -> torch.Tensor:
    if tensor.shape[0] == batch:
        return tensor
    if tensor.shape[0] == 1:
        return tensor.expand(batch, *tensor.shape[1:])
    raise ValueError(f"{name} has a batch of {tensor.shape[0]}, the sample a batch of {batch}: "
                     "give one per image or a single one for all")


def _check_size(tensor: torch.Tensor, like: torch.Tensor, scale: int, name: str) -> None:
    size = tuple(side * scale for side in like.shape[-2:])
    if tuple(tensor.shape[-2:]) != size:
        raise ValueError(f"{name} is {tuple(tensor.shape[-2:])} (H, W) but the sample is {size} "
                         "pixels: resize it to the image it guides")


class GuidanceTerm:
    """One more term of a stage's loss on the x0 estimate in pixels (B x 3 x H x W in [-1, 1]),
    beside the paper's, e.g. an identity term towards reference photos. A term is a frozen
    dataclass: its weight declared with `settings.setting()` (so that a node can offer it), its
    loss in `loss`. `start` gives the term prepared for one run (its tensors on the sample's
    device and batch); the stage adds `loss(x0, when)` (None: inactive at this step) to its own
    under the same normalised correction."""

    def start(self, sample: torch.Tensor) -> "GuidanceTerm":
        return self

    def loss(self, x0: torch.Tensor, when: StepTime) -> torch.Tensor | None:
        raise NotImplementedError


def _with_terms(total: torch.Tensor, terms: tuple[GuidanceTerm, ...], x0: torch.Tensor,
                when: StepTime) -> torch.Tensor:
    for term in terms:
        extra = term.loss(x0, when)
        if extra is not None:
            total = total + extra
    return total


class GradientOnlyRun:
    """SSDiff's stages steer by their gradient alone: each step's x_{t-1} stays as it is."""

    def after_step(self, x_prev: torch.Tensor, step: Transition, when: StepTime, noise) -> torch.Tensor:
        return x_prev


@dataclass(frozen=True)
class PseudoReferenceGuidance:
    """Stage 1: lightness from the degraded input outside the scratches, natural face colour
    from fixed CelebA-HQ statistics. g is zeroed on every scratch pixel."""
    degraded: torch.Tensor
    scratch: torch.Tensor
    scale: float = setting(0.001, 0.0, 1.0, "s1: guidance step relative to the sampler's own step", 0.0001)
    lightness_weight: float = 1.0
    colour_weight: float = 1.0
    colour_from_input_above: float = 0.65
    repeat: RepeatWindow = field(default_factory=RepeatWindow)
    variant: MethodVariant = PAPER
    terms: tuple[GuidanceTerm, ...] = ()
    """More terms of the loss (GuidanceTerm); none: the paper's stage 1."""

    @property
    def sample_size(self) -> tuple[int, int]:
        return tuple(self.degraded.shape[-2:])

    def start(self, sample: torch.Tensor, pixel_map: PixelMap = IdentityMap()) -> "PseudoReferenceRun":
        for tensor, name in ((self.degraded, "degraded image"), (self.scratch, "scratch mask")):
            _check_size(tensor, sample, pixel_map.scale, name)
        batch = sample.shape[0]
        undamaged = _normal_tensor(_batched(self.scratch == 0, batch, "scratch mask"), sample)
        with torch.inference_mode(False):
            return PseudoReferenceRun(
                self,
                degraded=_normal_tensor(_batched(self.degraded, batch, "degraded image"), sample),
                undamaged=undamaged,
                undamaged_latent=~latent_resolution(~undamaged, pixel_map.scale),
                to_pixels=pixel_map.prepare(sample), terms=tuple(term.start(sample) for term in self.terms))


@dataclass
class PseudoReferenceRun(GradientOnlyRun):
    spec: PseudoReferenceGuidance
    degraded: torch.Tensor
    undamaged: torch.Tensor
    undamaged_latent: torch.Tensor
    to_pixels: ToPixels
    terms: tuple[GuidanceTerm, ...] = ()

    def gradient(self, x0h: torch.Tensor, when: StepTime) -> torch.Tensor:
        spec = self.spec
        colour_from_input = when.after(spec.colour_from_input_above)

        def loss(x0: torch.Tensor) -> torch.Tensor:
            colour_source = self.degraded if colour_from_input else x0
            total = (spec.lightness_weight * losses.lightness_loss(x0, self.degraded, self.undamaged)
                     + spec.colour_weight * losses.face_colour_loss(x0, colour_source))
            return _with_terms(total, self.terms, x0, when)

        return _loss_gradient(x0h, self.to_pixels, loss) * self.undamaged_latent

    def step_time(self, timestep: float, num_timesteps: int) -> StepTime:
        return self.spec.variant.step_time(timestep, num_timesteps)

    def correction_rule(self, repeat_index: int) -> tuple[bool, bool]:
        """(per_image, per_channel) norms of the normalised step."""
        variant = self.spec.variant
        return variant.per_image_norms, variant.stage1_channel_norms_in_repeats or repeat_index == 0


@dataclass(frozen=True)
class SelectiveGuidance:
    """Stage 2: structure from the coarse restoration outside M_o, the pseudo-reference's local
    structure in damaged background (t >= T1), and colour from a target built at T1 (t < T1).

    colour_reference: what the colour target is transferred from (default: the pseudo-reference).
    colour_target: a ready colour target C; when given, no transfer is made.
    colour_region: where the colour term acts (e.g. FaceParse's mask, for stylisation); default:
    everywhere but background, cloth and hair.
    """
    coarse: torch.Tensor
    pseudo_reference: torch.Tensor
    masks: SelectiveMasks
    colour_reference: torch.Tensor | None = None
    colour_target: torch.Tensor | None = None
    colour_region: torch.Tensor | None = None
    colour_transfer: ColourTransfer = masked_mean_std_transfer
    t1: float = setting(0.4, 0.01, 0.99, "T1 as a fraction of the schedule: reference structure above, colour below",
                        0.01)
    scale: float = setting(0.0035, 0.0, 1.0, "s2: guidance step relative to the sampler's own step", 0.0001)
    structure_weight: float = setting(1.0, 0.0, 1000.0, "structure term: the coarse restoration outside the grown "
                                                        "scratches, at every step (the paper: 1)", 0.1)
    reference_weight: float = setting(100.0, 0.0, 10000.0, "reference-structure term: the pseudo-reference's local "
                                                            "gradients in damaged background, above T1 (the paper: "
                                                            "100)", 1.0)
    colour_weight: float = setting(20.0, 0.0, 1000.0, "colour term: the colour target on the face, below T1 (the "
                                                      "paper: 20)", 0.1)
    repeat: RepeatWindow = field(default_factory=RepeatWindow)
    variant: MethodVariant = PAPER
    terms: tuple[GuidanceTerm, ...] = ()
    """More terms of the loss (GuidanceTerm); none: the paper's stage 2."""

    def __post_init__(self) -> None:
        if not 0.0 < self.t1 < 1.0:
            raise ValueError(f"T1 is a fraction of the schedule and must lie in (0, 1), got {self.t1}")

    @property
    def sample_size(self) -> tuple[int, int]:
        return tuple(self.coarse.shape[-2:])

    def start(self, sample: torch.Tensor, pixel_map: PixelMap = IdentityMap()) -> "SelectiveRun":
        batch = sample.shape[0]

        def prepared(tensor: torch.Tensor | None, name: str) -> torch.Tensor | None:
            if tensor is None:
                return None
            _check_size(tensor, sample, pixel_map.scale, name)
            return _normal_tensor(_batched(tensor, batch, name), sample)

        colour_free = self.masks.colour_free if self.colour_region is None else ~(self.colour_region > 0.5)
        with torch.inference_mode(False):
            to_pixels = pixel_map.prepare(sample)
            terms = tuple(term.start(sample) for term in self.terms)
        return SelectiveRun(
            self,
            coarse=prepared(self.coarse, "coarse restoration"),
            pseudo_reference=prepared(self.pseudo_reference, "pseudo-reference"),
            colour_reference=prepared(
                self.pseudo_reference if self.colour_reference is None else self.colour_reference,
                "colour reference"),
            damage=prepared(self.masks.damage, "scratch mask"),
            reference_region=prepared(self.masks.reference, "scratch mask"),
            colour_free=prepared(colour_free, "parsing"),
            colour_target=prepared(self.colour_target, "colour target"),
            to_pixels=to_pixels, terms=terms)


@dataclass
class SelectiveRun(GradientOnlyRun):
    spec: SelectiveGuidance
    coarse: torch.Tensor
    pseudo_reference: torch.Tensor
    colour_reference: torch.Tensor
    damage: torch.Tensor
    reference_region: torch.Tensor
    colour_free: torch.Tensor
    colour_target: torch.Tensor | None
    to_pixels: ToPixels
    terms: tuple[GuidanceTerm, ...] = ()

    def gradient(self, x0h: torch.Tensor, when: StepTime) -> torch.Tensor:
        spec = self.spec
        before_t1 = not when.at_or_after(spec.t1)
        if self.colour_target is None and self._builds_colour_target(when):
            self.colour_target = self._transfer_colour(x0h)
        use_reference = not before_t1 and spec.variant.reference_term
        use_colour = before_t1 and self.colour_target is not None

        def loss(x0: torch.Tensor) -> torch.Tensor:
            total = spec.structure_weight * losses.structure_loss(x0, self.coarse, self.damage)
            if use_reference:
                total = total + spec.reference_weight * losses.reference_structure_loss(
                    x0, self.pseudo_reference, self.reference_region)
            if use_colour:
                total = total + spec.colour_weight * losses.colour_loss(
                    x0, self.colour_target, self.colour_free)
            return _with_terms(total, self.terms, x0, when)

        return _loss_gradient(x0h, self.to_pixels, loss)

    def _builds_colour_target(self, when: StepTime) -> bool:
        if self.spec.variant.colour_target_at_first_step_below_t1:
            return not when.after(self.spec.t1)
        return when.at_or_after(self.spec.t1) and not when.after(self.spec.t1)

    def _transfer_colour(self, x0h: torch.Tensor) -> torch.Tensor:
        content = _decoded(x0h, self.to_pixels)
        with torch.inference_mode(False):
            style = self.colour_reference
            if self.spec.variant.colour_transfer_on_whole_images:
                content = content.masked_fill(self.colour_free, 1.0)
                style = style.masked_fill(self.colour_free, 1.0)
                region = torch.ones_like(self.colour_free)
            else:
                region = ~self.colour_free
            return self.spec.colour_transfer(content, style, region).detach()

    def step_time(self, timestep: float, num_timesteps: int) -> StepTime:
        return self.spec.variant.step_time(timestep, num_timesteps)

    def correction_rule(self, repeat_index: int) -> tuple[bool, bool]:
        return self.spec.variant.per_image_norms, True
