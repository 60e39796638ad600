"""ComfyUI-SSDiff: old-photo face restoration with SSDiff's self-supervised selective guidance."""
from .comfy_adapter import checkpoints
from .nodes import SSDiffExtension

checkpoints.register_model_folders()

WEB_DIRECTORY = "./web"


async def comfy_entrypoint() -> SSDiffExtension:
    return SSDiffExtension()
