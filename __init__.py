"""ComfyUI-SSDiff: old-photo face restoration with SSDiff's self-supervised selective guidance."""
from .ssdiff_core import host
from .nodes import SSDiffExtension

host.register_model_folders()


async def comfy_entrypoint() -> SSDiffExtension:
    return SSDiffExtension()
