"""SSDiff's method: masks, losses, stage schedule and the guided sampler. Free of ComfyUI but for
`host`, the one adapter to it."""
