"""Every value a node receives, checked when it executes against what its schema declares: numbers
within their widget's range, text, switches and choices of their kind, IMAGE and MASK tensors of
their shape, with at least one item, finite and in 0..1, parsings of CelebAMask-HQ ids, and then
the node's own validate_inputs. ComfyUI checks widget values before a run, but a value that
arrives through a link (a Primitive node, an any-type reroute, a filter) skips those checks, and
validate_inputs sees it as missing."""
from __future__ import annotations

import functools
import inspect
import logging
import math
from numbers import Integral, Real
from typing import Any, Callable, Mapping

import torch
from comfy_api.latest import io

from ..ssdiff_core.regions import CELEBAMASK_HQ_LABELS
from .types import ParsingType

IMAGE_SHAPE = "an IMAGE (batch x height x width x channels, 1, 3 or 4 channels)"
MASK_SHAPE = "a MASK (batch x height x width)"
PARSING_SHAPE = ("a face parsing (batch x height x width of CelebAMask-HQ ids, from SSDiff Face Parse or "
                 "SSDiff Label Map to Parsing)")
OVERSHOOT_TOLERANCE = 0.5
"""How far outside 0..1 pixel values may stray and still be clamped with a warning (the overshoot
of a sharpening or Lanczos node); further out they are on another scale, such as 0..255."""


class InputError(ValueError):
    """A value a node cannot work with, named with the input it came through."""


def describe(value: Any) -> str:
    """What a value is, in the words of ComfyUI's wire types where it looks like one."""
    if isinstance(value, torch.Tensor):
        return f"a {value.ndim}-D tensor of shape {tuple(value.shape)} ({str(value.dtype).removeprefix('torch.')})"
    if isinstance(value, dict):
        keys = ", ".join(map(str, list(value)[:4]))
        hint = " (a LATENT: decode it with VAE Decode)" if "samples" in value else ""
        return f"a dict with keys {keys}{hint}"
    return f"a {type(value).__name__}"


def distinct_values(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor without the repeats of its zero-stride dimensions (an expanded view: a broadcast
    image or mask holds one slice's values however large it claims to be), for checks of its
    values: their range and finiteness are the slice's."""
    for dimension, (size, stride) in enumerate(zip(tensor.shape, tensor.stride())):
        if stride == 0 and size > 1:
            tensor = tensor.narrow(dimension, 0, 1)
    return tensor


def require_finite(tensor: torch.Tensor, name: str) -> None:
    """Refuses NaN and infinite values, which would spread through every later step unseen."""
    values = distinct_values(tensor)
    # Each of a broadcast tensor's distinct values stands for the same number of its elements.
    invalid = int((~torch.isfinite(values)).sum()) * (tensor.numel() // max(values.numel(), 1))
    if invalid:
        raise InputError(f"{name} contains {invalid} NaN or infinite values (of {tensor.numel()}): the node "
                         f"that made it produced invalid pixels; fix or replace that node's output")


def _require_unit_range(tensor: torch.Tensor, name: str, kind: str) -> None:
    """Finite values in 0..1: a small overshoot is clamped later, with a warning; values on another
    scale are refused. Reductions, so that a large image is not copied to be checked."""
    values = distinct_values(tensor)
    low, high = (float(bound) for bound in torch.aminmax(values.float() if not values.is_floating_point()
                                                         else values))
    if not (math.isfinite(low) and math.isfinite(high)):
        require_finite(tensor, name)
    if low >= 0.0 and high <= 1.0:
        return
    if low < -OVERSHOOT_TOLERANCE or high > 1.0 + OVERSHOOT_TOLERANCE:
        scale = " (0..255: the node that made it did not divide by 255)" if high > 1.0 + OVERSHOOT_TOLERANCE else ""
        raise InputError(f"{name} holds values from {low:.4g} to {high:.4g}, but {kind} values run from 0 to "
                         f"1{scale}: rescale it to 0..1 before this node")
    logging.warning("SSDiff: %s holds values from %.4g to %.4g, outside %s's 0..1; clamping them", name, low,
                    high, kind)


def check_image(value: Any, name: str) -> None:
    if not isinstance(value, torch.Tensor):
        raise InputError(f"{name}: expected {IMAGE_SHAPE}, got {describe(value)}")
    if value.ndim != 4 or value.shape[-1] not in (1, 3, 4):
        hint = " (a MASK? convert it with Convert Mask to Image)" if value.ndim in (2, 3) else ""
        raise InputError(f"{name}: expected {IMAGE_SHAPE}, got {describe(value)}{hint}")
    if value.shape[0] == 0:
        raise InputError(f"{name} is an empty batch (0 images): the node before it passed no image on "
                         "(a filter that matched nothing?); this node needs at least one")
    if 0 in value.shape[1:3]:
        raise InputError(f"{name} has no pixels: its size is {value.shape[2]}x{value.shape[1]}")
    _require_unit_range(value, name, "IMAGE")


def check_mask(value: Any, name: str) -> None:
    if not isinstance(value, torch.Tensor):
        raise InputError(f"{name}: expected {MASK_SHAPE}, got {describe(value)}")
    if value.ndim not in (2, 3):
        hint = " (an IMAGE? convert it with Convert Image to Mask)" if value.ndim == 4 else ""
        raise InputError(f"{name}: expected {MASK_SHAPE}, got {describe(value)}{hint}")
    if value.ndim == 3 and value.shape[0] == 0:
        raise InputError(f"{name} is an empty batch (0 masks): the node before it passed no mask on; connect a "
                         "mask or leave the input unconnected")
    if 0 in value.shape[-2:]:
        raise InputError(f"{name} has no pixels: its size is {value.shape[-1]}x{value.shape[-2]}")
    _require_unit_range(value, name, "MASK")


def check_parsing(value: Any, name: str) -> None:
    if not isinstance(value, torch.Tensor) or value.ndim != 3 or value.is_floating_point() or \
            value.dtype == torch.bool:
        raise InputError(f"{name}: expected {PARSING_SHAPE}, got {describe(value)}")
    if value.shape[0] == 0:
        raise InputError(f"{name} is an empty batch (0 parsings): this node needs one per image or one for all")
    low, high = (int(bound) for bound in torch.aminmax(value))
    if low < 0 or high >= len(CELEBAMASK_HQ_LABELS):
        raise InputError(f"{name} holds ids from {low} to {high}, but CelebAMask-HQ ids run from 0 to "
                         f"{len(CELEBAMASK_HQ_LABELS) - 1}")


def _range_text(spec: io.Int.Input | io.Float.Input) -> str:
    return f"{'-inf' if spec.min is None else spec.min} to {'inf' if spec.max is None else spec.max}"


def check_number(value: Any, spec: io.Int.Input | io.Float.Input) -> None:
    whole = isinstance(spec, io.Int.Input)
    kind = "a whole number" if whole else "a number"
    if isinstance(value, bool) or not isinstance(value, Integral if whole else Real):
        raise InputError(f"{spec.id}: expected {kind} from {_range_text(spec)}, got {describe(value)}")
    if not math.isfinite(value) or (spec.min is not None and value < spec.min) or \
            (spec.max is not None and value > spec.max):
        raise InputError(f"{spec.id} is {value}, outside its range {_range_text(spec)}")


def check_choice(value: Any, spec: io.Combo.Input) -> None:
    if value not in spec.options:
        raise InputError(f"{spec.id} is {value!r}, not one of {', '.join(map(str, spec.options))}")


def check_value(value: Any, spec: io.Input) -> None:
    """One input's value against its declaration in the node's schema."""
    if isinstance(spec, (io.Int.Input, io.Float.Input)):
        check_number(value, spec)
    elif isinstance(spec, io.Combo.Input):
        check_choice(value, spec)
    elif isinstance(spec, io.Boolean.Input) and not isinstance(value, bool):
        raise InputError(f"{spec.id}: expected true or false, got {describe(value)}")
    elif isinstance(spec, io.String.Input) and not isinstance(value, str):
        raise InputError(f"{spec.id}: expected text, got {describe(value)}")
    elif isinstance(spec, io.Image.Input):
        check_image(value, spec.id)
    elif isinstance(spec, io.Mask.Input):
        check_mask(value, spec.id)
    elif isinstance(spec, ParsingType.Input):
        check_parsing(value, spec.id)


def _own_validation(node_class: type[io.ComfyNode]) -> Callable[..., bool | str] | None:
    validate = node_class.validate_inputs
    return None if getattr(validate, "__func__", None) is io.ComfyNode.validate_inputs.__func__ else validate


def check_inputs(node_class: type[io.ComfyNode], values: Mapping[str, Any]) -> None:
    """Checks the values a node executes with, as check_value and the node's validate_inputs see
    them; an unconnected optional input (None) is not checked. Inputs that validate_inputs names
    are left to it, as ComfyUI leaves them before a run."""
    validate = _own_validation(node_class)
    validated = set(inspect.signature(validate).parameters) if validate else set()
    for spec in node_class.define_schema().inputs:
        value = values.get(spec.id)
        if value is not None and not (spec.id in validated and isinstance(spec, io.Combo.Input)):
            check_value(value, spec)
    if validate:
        verdict = validate(**{name: values[name] for name in validated if name in values})
        if verdict is not True:
            raise InputError(str(verdict))


def checked_inputs(execute: Callable[..., io.NodeOutput]) -> Callable[..., io.NodeOutput]:
    """Decorates a node's execute (below its @classmethod) to check_inputs first."""
    signature = inspect.signature(execute)

    @functools.wraps(execute)
    def run(cls, *args, **kwargs) -> io.NodeOutput:
        bound = signature.bind(cls, *args, **kwargs)
        values: dict[str, Any] = {}
        for name, value in list(bound.arguments.items())[1:]:
            is_options = signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD
            values.update(value if is_options else {name: value})
        check_inputs(cls, values)
        return execute(cls, *args, **kwargs)
    return run
