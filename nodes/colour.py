"""Colour transfer: CAP-VSTNet loading and a stand-alone transfer node (also for stylisation)."""
from __future__ import annotations

import torch
from comfy_api.latest import io

from ..comfy_adapter import managed
from ..models import cap_vstnet
from ..priors.cap_vstnet_transfer import CapVstnetTransfer
from ..ssdiff_core.colour_transfer import masked_mean_std_transfer
from . import boundary
from .loaders import CheckpointLoader
from .types import ColourTransferType
from .input_checks import checked_inputs


class SSDiffColourTransferLoader(CheckpointLoader):
    FILE = cap_vstnet.FILE

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SSDiffColourTransferLoader",
            display_name="SSDiff Colour Transfer Loader",
            category="SSDiff/colour",
            description="CAP-VSTNet's photorealistic network (photo_image.pt), the transfer SSDiff "
                        "uses at T1. Without it the built-in masked mean/std transfer is used.",
            inputs=[cls.checkpoint_input()],
            outputs=[ColourTransferType.Output(display_name="colour_transfer")],
        )

    @classmethod
    @checked_inputs
    def execute(cls, model_name: str) -> io.NodeOutput:
        network = cls.load(model_name, cap_vstnet.build)
        return io.NodeOutput(CapVstnetTransfer(managed.managed(network.float())))


class SSDiffColourTransfer(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SSDiffColourTransfer",
            display_name="SSDiff Colour Transfer",
            category="SSDiff/colour",
            description=("Recolours the content image towards the style image inside the region "
                         "(e.g. FaceParse's face mask); outside it the content is unchanged."),
            inputs=[
                io.Image.Input("content", tooltip="the image to recolour"),
                io.Image.Input("style", tooltip="the image whose colours are taken (resized to the content's size)"),
                io.Mask.Input("region", optional=True, tooltip="where to transfer (default: everywhere)"),
                ColourTransferType.Input("colour_transfer", optional=True,
                                         tooltip="CAP-VSTNet from its loader; default: masked mean/std"),
            ],
            outputs=[io.Image.Output()],
        )

    @classmethod
    @checked_inputs
    def execute(cls, content: torch.Tensor, style: torch.Tensor, region: torch.Tensor | None = None,
                colour_transfer=None) -> io.NodeOutput:
        content_image = boundary.image_to_model(content)
        batch, size = content_image.shape[0], tuple(content_image.shape[-2:])
        style_image = boundary.image_to_model(style)
        boundary.require_batch(style_image, batch, "style", "content")
        style_image = boundary.match_size(style_image, size, "style")
        if region is None:
            inside = torch.ones_like(content_image[:, :1], dtype=torch.bool)
        else:
            region_mask = boundary.mask_to_model(region)
            boundary.require_batch(region_mask, batch, "region", "content")
            inside = boundary.match_size(region_mask, size, "region") > 0.5
            inside = inside.expand(batch, -1, -1, -1)
        if isinstance(colour_transfer, CapVstnetTransfer):
            managed.load(colour_transfer.network)
        transfer = colour_transfer or masked_mean_std_transfer
        recoloured = transfer(content_image, style_image.expand_as(content_image), inside)
        return io.NodeOutput(boundary.model_to_image(torch.where(inside, recoloured, content_image)))
