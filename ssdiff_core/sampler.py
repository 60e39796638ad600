"""The SSDiff guided sampler: ancestral DDPM steps with the learned variance (or the step of
another single-step sampler), each followed by the normalised guidance correction. A
k-diffusion-style function, as ComfyUI's KSAMPLER expects: `model(x, sigma, **extra_args)` returns
the x0 estimate of the scaled state x = x_t sqrt(1+sigma^2).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch
from tqdm.auto import trange

from . import ddpm
from .correction import apply_normalised_correction
from .pixel_space import IdentityMap, PixelMap
from .schedule import RepeatWindow, StepTime, snap_to_schedule, timestep_of_sigma

VARIANCE_SINK_KEY = "ssdiff_variance_sink"
"""transformer_options key under which the sampler hands the model a VarianceSink."""


class VarianceSink:
    """Receives the learned-variance channels of the model's last evaluation."""

    def __init__(self) -> None:
        self.model_output: torch.Tensor | None = None

    def store(self, output: torch.Tensor, cond_or_uncond: list[int] | None) -> None:
        """`output` holds one chunk per entry of ComfyUI's cond_or_uncond list (cond = 0); keep
        the conditional chunk (an unconditional model gives the same output for both)."""
        chunks = output.chunk(len(cond_or_uncond)) if cond_or_uncond else [output]
        index = cond_or_uncond.index(0) if cond_or_uncond and 0 in cond_or_uncond else 0
        self.model_output = chunks[index]

    def take(self) -> torch.Tensor | None:
        output, self.model_output = self.model_output, None
        return output


class ItemNoise:
    """Standard-normal noise for each batch item from its own CPU generator seeded seed + index:
    an item's noise does not depend on the batch it is in, nor on the device."""

    def __init__(self, seed: int, shape: tuple[int, ...], skip: int = 0):
        self.item_shape = (1, *shape[1:])
        self.generators = [torch.Generator().manual_seed((seed + i) % 2 ** 64) for i in range(shape[0])]
        for _ in range(skip):
            self.draw()

    def draw(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
        noise = torch.cat([torch.randn(self.item_shape, generator=g) for g in self.generators])
        return noise.to(device=device, dtype=dtype)


class CapturingModel:
    """Wraps a k-diffusion model and keeps the x0 estimate of its first call; other attributes
    pass through (ComfyUI's samplers look at model.inner_model)."""

    def __init__(self, model: Callable[..., torch.Tensor]):
        self.model = model
        self.first_denoised: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **kwargs) -> torch.Tensor:
        denoised = self.model(x, sigma, **kwargs)
        if self.first_denoised is None:
            self.first_denoised = denoised
        return denoised

    def __getattr__(self, name: str):
        return getattr(self.model, name)


StepFunction = Callable[[CapturingModel, torch.Tensor, torch.Tensor, dict, Callable[[], torch.Tensor]], torch.Tensor]
"""(model, x, [sigma, sigma_next], extra_args, draw_noise) -> x at sigma_next, k-diffusion units:
one step of another sampler, in place of the learned-variance DDPM step."""


class GuidanceRun(Protocol):
    def gradient(self, x0h: torch.Tensor, when: StepTime) -> torch.Tensor: ...
    def step_time(self, timestep: float, num_timesteps: int) -> StepTime: ...
    def correction_rule(self, repeat_index: int) -> tuple[bool, bool]: ...
    def after_step(self, x_prev: torch.Tensor, step: ddpm.Transition, when: StepTime,
                   noise: ItemNoise) -> torch.Tensor:
        """x_{t-1} (VP units) once the step and its repeats are done: a constraint on the sample
        (the pseudo-targets' low-frequency replacement), drawing any noise it needs from `noise`."""
        ...


class Guidance(Protocol):
    scale: float
    repeat: RepeatWindow
    def start(self, sample: torch.Tensor, pixel_map: PixelMap) -> GuidanceRun: ...


@dataclass
class StepRecord:
    """Everything one guided step computed, in VP units (x_t = sqrt(abar) x0 + sqrt(1-abar) eps)."""
    timestep: float
    x_t: torch.Tensor
    model_output: torch.Tensor | None
    x0h: torch.Tensor
    mean: torch.Tensor | None
    log_variance: torch.Tensor | None
    x_unguided: torch.Tensor
    gradient: torch.Tensor
    k: torch.Tensor
    x_prev: torch.Tensor


def _sigma_above(sigmas: list[float], index: int, discrete_sigmas: torch.Tensor) -> float | None:
    if index > 0:
        return sigmas[index - 1]
    above = discrete_sigmas[discrete_sigmas > sigmas[index] * (1 + 1e-6)]
    return float(above.min()) if len(above) else None


def _ddpm_step(model, x: torch.Tensor, step: ddpm.Transition, s_in: torch.Tensor, extra_args: dict,
               sink: VarianceSink, step_noise: ItemNoise, clamp_x0: bool):
    """The ancestral DDPM step from the k-diffusion state x; learned variance where the model
    gives its variance channels. Returns (x_t, x0h, mean, log variance, x unguided, model output)."""
    denoised = model(x, step.sigma * s_in, **extra_args)
    x_t = ddpm.vp_from_k_diffusion(x, step.sigma)
    model_output = sink.take()
    x0h = denoised.clamp(-1, 1) if clamp_x0 else denoised
    channels = x_t.shape[1]
    if model_output is not None and model_output.shape[1] == 2 * channels:
        log_variance = ddpm.learned_log_variance(step, model_output[:, channels:].float())
    else:
        log_variance = ddpm.fixed_log_variance(step, x0h)
    mean = ddpm.posterior_mean(step, x0h, x_t)
    z = step_noise.draw(x_t.device, x_t.dtype)
    x_unguided = mean if step.is_last else mean + torch.exp(0.5 * log_variance) * z
    return x_t, x0h, mean, log_variance, x_unguided, model_output


def _guided_pass(model, x: torch.Tensor, step: ddpm.Transition, s_in: torch.Tensor, extra_args: dict,
                 sink: VarianceSink, step_noise: ItemNoise, base_step: StepFunction | None, clamp_x0: bool,
                 run: GuidanceRun, when: StepTime, scale: float,
                 correction_rule: tuple[bool, bool]) -> StepRecord:
    """One model evaluation of the k-diffusion state x at step.sigma and the normalised guidance
    correction after it. The VP state x_t is derived after the model call, so that only the
    model's input is alive while the network runs."""
    if base_step is None:
        x_t, x0h, mean, log_variance, x_unguided, model_output = _ddpm_step(
            model, x, step, s_in, extra_args, sink, step_noise, clamp_x0)
    else:
        capturing = CapturingModel(model)
        x_next = base_step(capturing, x, torch.tensor([step.sigma, step.sigma_prev], device=x.device), extra_args,
                           lambda: step_noise.draw(x.device, x.dtype))
        x_t = ddpm.vp_from_k_diffusion(x, step.sigma)
        x0h = capturing.first_denoised.clamp(-1, 1) if clamp_x0 else capturing.first_denoised
        mean, log_variance = None, None
        x_unguided, model_output = ddpm.vp_from_k_diffusion(x_next, step.sigma_prev), sink.take()
    gradient = run.gradient(x0h, when)
    per_image, per_channel = correction_rule
    x_prev, k = apply_normalised_correction(x_t, x_unguided, gradient, scale, per_image, per_channel)
    return StepRecord(when.timestep, x_t, model_output, x0h, mean, log_variance, x_unguided, gradient, k, x_prev)


def sample_ssdiff(model: Callable[..., torch.Tensor], x: torch.Tensor, sigmas: torch.Tensor,
                  extra_args: dict | None = None, callback: Callable[[dict], None] | None = None,
                  disable: bool | None = None, *, guidance: Guidance, discrete_sigmas: torch.Tensor,
                  step_noise: ItemNoise | None = None, base_step: StepFunction | None = None,
                  pixel_map: PixelMap = IdentityMap(), clamp_x0: bool = True,
                  interrupt: Callable[[], None] | None = None) -> torch.Tensor:
    """Runs the guided reverse process over `sigmas` (descending, ending with 0). The first five
    parameters are k-diffusion's sampler protocol, which ComfyUI calls: `disable` turns off the
    console progress bar, as in its own samplers.

    discrete_sigmas: the model's noise level per DDPM index, float64 where known (maps steps to
    the original schedule). step_noise: the per-step noise (default: ItemNoise of extra_args'
    seed, after the draw that made the initial noise). base_step: another sampler's step in
    place of the learned-variance DDPM step. pixel_map: x0 -> the pixels the losses are
    written on (identity for a pixel-space model). clamp_x0: clamp the x0 estimate to [-1, 1]
    (pixel space). interrupt: called before every guided step.
    """
    extra_args = dict(extra_args or {})
    sink = VarianceSink()
    model_options = dict(extra_args.get("model_options", {}))
    model_options["transformer_options"] = {**model_options.get("transformer_options", {}),
                                            VARIANCE_SINK_KEY: sink}
    extra_args["model_options"] = model_options
    if step_noise is None:
        step_noise = ItemNoise(int(extra_args.get("seed", 0)), tuple(x.shape), skip=1)
    run = guidance.start(x, pixel_map)
    num_timesteps = len(discrete_sigmas)
    s_in = x.new_ones([x.shape[0]])
    levels = [snap_to_schedule(float(sigma), discrete_sigmas) for sigma in sigmas]

    record: StepRecord | None = None
    for i in trange(len(levels) - 1, disable=disable):
        sigma, sigma_prev = levels[i], levels[i + 1]
        if sigma <= 0:  # a grid may end in several zeros: nothing is left to denoise
            continue
        step = ddpm.transition(sigma, sigma_prev, _sigma_above(levels, i, discrete_sigmas))
        when = run.step_time(timestep_of_sigma(sigma, discrete_sigmas), num_timesteps)
        repeats = guidance.repeat.repeats_at(when.timestep, num_timesteps)
        for repeat_index in range(repeats):
            if repeat_index > 0:  # a repeat starts again at this level from the corrected sample
                x = ddpm.k_diffusion_from_vp(record.x_prev, sigma)
            record = None  # the last pass's tensors are not kept through this pass's model call
            if interrupt is not None:
                interrupt()
            record = _guided_pass(model, x, step, s_in, extra_args, sink, step_noise, base_step, clamp_x0, run,
                                  when, guidance.scale, run.correction_rule(repeat_index))
        record.x_prev = run.after_step(record.x_prev, step, when, step_noise)
        x = ddpm.k_diffusion_from_vp(record.x_prev, sigma_prev)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i],
                      "denoised": record.x0h, "ssdiff": record})
    return x
