"""Cancel and out-of-memory during sampling, through the real server's /interrupt and /prompt and
in-process: sampling stops, nothing is left behind, the next run equals a fresh one."""
from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
import requests
import torch
import websocket

from robustness_support import (assert_still_serves, ddpm_loader, execution_error, output_arrays, random_rgb,
                                stage1_prompt, write_image)
from node_runner import execute
from test_host_nodes import face_model, stage1_inputs, synthetic_faces  # noqa: F401

LONG_STEPS = 1000


def host_state(server) -> dict:
    """The server worker's autograd state and the cached face MODEL's patches (RobustnessProbeHostState)."""
    prompt = {"1": ddpm_loader(), "2": {"class_type": "RobustnessProbeHostState",
                                        "inputs": {"model": ["1", 0], "tag": uuid.uuid4().hex}}}
    return json.loads(server.run(prompt, timeout=120)["outputs"]["2"]["text"][0])


def interrupt_after(server, prompt: dict, steps_before_interrupt: int) -> tuple[int, list[int], dict]:
    """Queues `prompt`, POSTs /interrupt once its progress reaches `steps_before_interrupt`; returns
    (progress when interrupted, every progress value seen, the /history entry)."""
    client_id = uuid.uuid4().hex
    socket = websocket.create_connection(f"ws://127.0.0.1:{server.port}/ws?clientId={client_id}", timeout=120)
    try:
        prompt_id = server.queue(prompt, client_id).json()["prompt_id"]
        progress, interrupted_at = [], None
        while True:
            message = socket.recv()
            if isinstance(message, bytes):  # a preview image
                continue
            event = json.loads(message)
            data = event.get("data", {})
            if data.get("prompt_id") != prompt_id:
                continue
            if event["type"] == "progress":
                progress.append(data["value"])
                if interrupted_at is None and data["value"] >= steps_before_interrupt:
                    interrupted_at = data["value"]
                    requests.post(f"{server.url}/interrupt", json={"prompt_id": prompt_id}, timeout=10)
            elif event["type"] in ("execution_interrupted", "execution_error", "execution_success"):
                break
    finally:
        socket.close()
    assert event["type"] == "execution_interrupted", f"the prompt ended with {event['type']}, not interrupted"
    return interrupted_at, progress, server.wait_for(prompt_id, timeout=60, raise_on_error=False)


def test_interrupt_stops_sampling_within_a_step_and_leaves_nothing_behind(server):
    image = random_rgb(64, 64, seed=41)
    fresh_name, long_name, again_name = (write_image(server, image) for _ in range(3))
    before = host_state(server)
    fresh = output_arrays(server, server.run(stage1_prompt(fresh_name, seed=41, steps=3), timeout=120))

    interrupted_at, progress, entry = interrupt_after(server, stage1_prompt(long_name, seed=41, steps=LONG_STEPS), 3)
    # One step may be under way when the interrupt arrives, and one progress message in flight.
    assert max(progress) <= interrupted_at + 2 < LONG_STEPS, (interrupted_at, progress[-5:])
    assert entry["status"]["status_str"] == "error" and not entry.get("outputs")
    assert any(message[0] == "execution_interrupted" for message in entry["status"]["messages"])

    assert host_state(server) == before
    again = output_arrays(server, server.run(stage1_prompt(again_name, seed=41, steps=3), timeout=120))
    assert len(fresh) == len(again) == 1 and np.array_equal(fresh[0], again[0])


def test_out_of_memory_names_the_lower_memory_options_and_the_server_keeps_serving(server):
    before = host_state(server)
    prompt = stage1_prompt(write_image(server, random_rgb(32, 32, seed=42)), seed=42, steps=3)
    prompt["9"] = {"class_type": "RobustnessProbeOutOfMemory", "inputs": {"model": ["1", 0], "after_calls": 1}}
    prompt["3"]["inputs"]["model"] = ["9", 0]
    text = execution_error(server, prompt)
    assert "SSDiff guidance ran out of memory on a batch of 1 at (32, 32)" in text, text
    for option in ("selection 'largest'", "weight_dtype bf16", "latent_rgb_approximation", "--lowvram"):
        assert option in text, option
    assert "OutOfMemoryError" in text
    assert host_state(server) == before
    assert_still_serves(server)


def test_interrupt_in_process_restores_grad_mode_and_model(comfy, face_model):  # noqa: F811
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


def test_out_of_memory_in_process_stays_an_out_of_memory_error(comfy, face_model, pack, monkeypatch):  # noqa: F811
    model, _ = face_model

    def exhausted(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(pack.comfy_adapter.sampling, "sample_ssdiff", exhausted)
    with pytest.raises(torch.OutOfMemoryError, match="bf16.*latent_rgb_approximation"):
        execute(comfy, "SSDiffPseudoReference", model=model, **stage1_inputs(synthetic_faces()))
    monkeypatch.undo()
    result, = execute(comfy, "SSDiffPseudoReference", model=model, **stage1_inputs(synthetic_faces()))
    assert torch.isfinite(result).all()
