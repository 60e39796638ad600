"""SSDiff's method, plain torch: masks, losses, the DDPM transition, the normalised correction, the
stage schedule, the guidance stages and the guided sampler. Free of ComfyUI (comfy_adapter/ is
the one adapter to it)."""
