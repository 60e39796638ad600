"""Faults during sampling: Cancel and out-of-memory leave nothing behind, in the real host."""
from __future__ import annotations

import pytest
import torch

from test_host_nodes import execute, face_model, stage1_inputs, synthetic_faces  # noqa: F401


def test_interrupt_stops_sampling_and_the_next_run_is_unaffected(comfy, face_model):  # noqa: F811
    import comfy.model_management as model_management
    model, _ = face_model
    faces = synthetic_faces()
    fresh, = execute(comfy, "SSDiffPseudoReference", model=model, **stage1_inputs(faces, seed=9, steps=6))
    grad_mode, options = torch.is_grad_enabled(), repr(model.model_options)
    model_management.interrupt_current_processing(True)
    try:
        with pytest.raises(model_management.InterruptProcessingException):
            execute(comfy, "SSDiffPseudoReference", model=model, **stage1_inputs(faces, seed=9, steps=6))
    finally:
        model_management.interrupt_current_processing(False)
    assert torch.is_grad_enabled() == grad_mode and not torch.is_inference_mode_enabled()
    assert repr(model.model_options) == options
    again, = execute(comfy, "SSDiffPseudoReference", model=model, **stage1_inputs(faces, seed=9, steps=6))
    assert torch.equal(fresh, again)


def test_out_of_memory_names_the_lower_memory_options(comfy, face_model, pack, monkeypatch):  # noqa: F811
    model, _ = face_model

    def exhausted(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(pack.ssdiff_core.host, "sample_ssdiff", exhausted)
    with pytest.raises(MemoryError, match="bf16.*latent_rgb_approximation"):
        execute(comfy, "SSDiffPseudoReference", model=model, **stage1_inputs(synthetic_faces()))
    monkeypatch.undo()
    result, = execute(comfy, "SSDiffPseudoReference", model=model, **stage1_inputs(synthetic_faces()))
    assert torch.isfinite(result).all()
