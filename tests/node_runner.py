"""Runs one node class of the in-process host as ComfyUI's executor does."""
from __future__ import annotations

import torch


def execute(comfy, node_id: str, **inputs) -> tuple:
    """Runs a node class as ComfyUI would: under inference_mode; returns its outputs tuple."""
    node = comfy.NODE_CLASS_MAPPINGS[node_id]
    with torch.inference_mode():
        if hasattr(node, "execute"):
            return tuple(node.execute(**inputs).result)
        instance = node()
        return tuple(getattr(instance, node.FUNCTION)(**inputs))
