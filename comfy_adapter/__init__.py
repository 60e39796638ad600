"""The one adapter between the pack and ComfyUI's internals, split by job: model files
(checkpoints), the face DDPM as a MODEL (face_model), how x0 reaches the pixel losses
(pixel_maps), guided sampling (sampling), and the progress of other long loops (progress).
Nothing else in the pack imports comfy."""
