"""The damage outside the faces: scratches, creases and dust filled on the whole photo at its own
resolution, on crops around each damaged region (priors/inpainting.py), with OpenCV's Telea
(no file) or LaMa (big-lama.pt, the file comfyui-inpaint-nodes users already have)."""
from __future__ import annotations

import torch
from comfy_api.latest import io

from ..comfy_adapter import checkpoints, device, managed
from ..models import lama
from ..priors.inpainting import (DEFAULT_DILATION_PX, DEFAULT_RADIUS, LAMA_BATCH_PIXELS,
                                LAMA_WORKING_BYTES, METHODS, fill, working_bytes)
from . import boundary
from .input_checks import checked_inputs
from .loaders import CheckpointLoader
from .types import InpaintModelType


class SSDiffInpaintModelLoader(CheckpointLoader):
    FILE = lama.FILE

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SSDiffInpaintModelLoader",
            display_name="SSDiff Inpaint Model Loader (LaMa)",
            category="SSDiff/scratches",
            description=("LaMa (big-lama.pt in models/inpaint, as comfyui-inpaint-nodes users have it, or a "
                         ".safetensors LaMa), for SSDiff Fill Damage. The TorchScript archive is read without "
                         "running any of its code. Runs in fp32: LaMa's Fourier units have no bf16 or fp16 FFT "
                         "(tests/test_precision.py)."),
            inputs=[cls.checkpoint_input()],
            outputs=[InpaintModelType.Output(display_name="inpaint_model")],
        )

    @classmethod
    @checked_inputs
    def execute(cls, model_name: str) -> io.NodeOutput:
        return io.NodeOutput(managed.managed(lama.load(checkpoints.model_path(cls.FILE, model_name))))


class SSDiffFillDamage(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SSDiffFillDamage",
            display_name="SSDiff Fill Damage",
            category="SSDiff/scratches",
            description=("Fills the damage a mask marks (SSDiff Scratch Mask's, or painted by hand) on the whole "
                         "photo at its own resolution: each damaged region is filled on a crop around it, with "
                         "enough context, and only the grown mask's pixels change (the rest stays bit-identical). "
                         "telea: OpenCV's inpainting, no file, good for thin scratches and dust; lama: LaMa, "
                         "for larger breaks. Any size, batches, grayscale and RGBA (alpha kept)."),
            inputs=[io.Image.Input("image", tooltip="the whole photos"),
                    io.Mask.Input("mask", tooltip="1 = damaged, at the photo's size (SSDiff Scratch Mask on the "
                                                  "whole photo, or painted)"),
                    io.Combo.Input("method", options=list(METHODS), default="telea",
                                   tooltip="telea: OpenCV, no file; lama: needs inpaint_model"),
                    io.Int.Input("dilation", default=DEFAULT_DILATION_PX, min=0, max=32,
                                 tooltip="grow the mask by this many pixels first: a scratch's soft edge is filled too"),
                    io.Float.Input("radius", default=DEFAULT_RADIUS, min=1.0, max=32.0, step=0.5,
                                   tooltip="telea: how far around each damaged pixel the fill looks, in pixels"),
                    InpaintModelType.Input("inpaint_model", optional=True,
                                           tooltip="LaMa from SSDiff Inpaint Model Loader, for method lama")],
            outputs=[io.Image.Output(display_name="image")],
        )

    @classmethod
    @checked_inputs
    def execute(cls, image: torch.Tensor, mask: torch.Tensor, method: str, dilation: int, radius: float,
                inpaint_model: torch.nn.Module | None = None) -> io.NodeOutput:
        if method == "lama" and inpaint_model is None:
            raise ValueError("method 'lama' needs inpaint_model: connect SSDiff Inpaint Model Loader (big-lama.pt "
                             "in models/inpaint), or choose method telea, which needs no file")
        _, height, width, channels = image.shape
        device.require_total_memory(
            working_bytes(height, width, channels, method), f"filling the damage of a {width}x{height} photo "
            f"({method})", "scale the photo down, or fill it in parts (crop it, fill each part, stitch them back)")
        masks = boundary.mask_to_model(mask)
        boundary.require_batch(masks, image.shape[0], "mask", "image")
        if tuple(masks.shape[-2:]) != tuple(image.shape[1:3]):
            raise ValueError(f"mask is {masks.shape[-1]} x {masks.shape[-2]} px but image is {image.shape[2]} x "
                             f"{image.shape[1]} px: give the mask of this photo at its own size (SSDiff Scratch "
                             "Mask on the whole photo)")
        if inpaint_model is not None and method == "lama":
            managed.load(inpaint_model, LAMA_WORKING_BYTES)
        photos = boundary.channels_first(image).float()

        def filled_with(batch_pixels: int) -> torch.Tensor:
            return fill(photos, masks, method, inpaint_model, device.check_interrupt, dilation_px=dilation,
                        radius=radius, batch_pixels=batch_pixels)

        filled = managed.smaller_on_out_of_memory(filled_with, LAMA_BATCH_PIXELS, 32 * 32,
                                                  "LaMa (pixels per batch of crops)")
        return io.NodeOutput(boundary.channels_last(filled))
