"""The pack's networks under ComfyUI's model management (issue 31, point 1), in the real host on
the CPU: each loader registers its network with a ModelPatcher, the node that runs it asks ComfyUI
to load it, and ComfyUI's unload (what /free with unload_models and *Unload models* call) releases
it; a copy of a network (training, gradient copies) is not managed. LPIPS is not registered: its
loader leaves it on the CPU and a fine-tune copies it to its own device for the run."""
from __future__ import annotations

import copy
import json
import time

import pytest
import requests
import torch

from node_runner import execute
from harness.tiny_models import big_lama, save_big_lama_archive
from harness.tiny_ddcolor import TINY_INPUT_SIZE


def loaded_networks() -> list[torch.nn.Module]:
    import comfy.model_management

    return [entry.model.model for entry in comfy.model_management.current_loaded_models if entry.model is not None]


def is_loaded(network: torch.nn.Module) -> bool:
    return any(model is network for model in loaded_networks())


def photo(height: int = 32, width: int = 32) -> torch.Tensor:
    return torch.rand(1, height, width, 3, generator=torch.Generator().manual_seed(0))


def loaded_models(server, tag: str = "") -> list[str]:
    """The class names of the models the server's model management holds loaded (the probe pack's
    RobustnessProbeLoadedModels; `tag` tells the runs apart in its log)."""
    entry = server.run({"p": {"class_type": "RobustnessProbeLoadedModels", "inputs": {"tag": tag}}})
    return json.loads(entry["outputs"]["p"]["text"][0])


def free_and_wait(server, free_memory: bool = False) -> list[str]:
    """POST /free with unload_models (and free_memory: the cache of outputs emptied too), which the
    worker carries out between prompts: waits up to 30 s for no model to be loaded; returns what
    still is."""
    response = requests.post(f"{server.url}/free", json={"unload_models": True, "free_memory": free_memory},
                             timeout=30)
    assert response.status_code == 200
    deadline = time.monotonic() + 30
    after = loaded_models(server, "after /free")
    while after and time.monotonic() < deadline:
        time.sleep(0.5)
        after = loaded_models(server, f"after /free, {deadline - time.monotonic():.1f} s left")
    return after


def unload_all() -> None:
    import comfy.model_management

    comfy.model_management.unload_all_models()
    comfy.model_management.cleanup_models_gc()


@pytest.fixture
def lama_file(models_root):
    path = save_big_lama_archive(big_lama(seed=1), models_root / "inpaint" / "big-lama.pt")
    yield path.name
    path.unlink()


def runs(comfy, bopbtl_files, ddcolor_file, lama_file):
    """(network, the call that runs it) per managed loader."""
    mask = torch.zeros(1, 32, 32)
    mask[0, 10, 4:28] = 1
    detector, = execute(comfy, "SSDiffScratchDetectorLoader", model_name="FT_Epoch_latest.pt")
    restorer, = execute(comfy, "SSDiffFaceRestorerLoader", model_name="codeformer.pth")
    parser, = execute(comfy, "SSDiffFaceParserLoader", model_name="parsing_parsenet.pth")
    lama, = execute(comfy, "SSDiffInpaintModelLoader", model_name=lama_file)
    colouriser, = execute(comfy, "SSDiffColouriserLoader", model_name=ddcolor_file.name, input_size=TINY_INPUT_SIZE)
    retinaface, = execute(comfy, "SSDiffFaceDetectorLoader", model_name="detection_mobilenet0.25_Final.pth")
    arcface, = execute(comfy, "SSDiffFaceRecognitionLoader", model_name="recognition_arcface_ir_se50.pth")
    transfer, = execute(comfy, "SSDiffColourTransferLoader", model_name="photo_image.pt")
    global_restoration, = execute(
        comfy, "SSDiffGlobalRestorationLoader", encoder="restoration/VAE_A_quality/latest_net_G.pth",
        mapping="restoration/mapping_quality/latest_net_mapping_net.pth",
        decoder="restoration/VAE_B_quality/latest_net_G.pth")
    return {
        "scratch detector": (detector, lambda: execute(comfy, "SSDiffScratchMask", detector=detector, image=photo(),
                                                       threshold=0.4, dilation=0, resize_mode="full_size")),
        "CodeFormer": (restorer.network, lambda: execute(comfy, "SSDiffCoarseRestore", restorer=restorer,
                                                         image=photo(64, 64), fidelity=0.5)),
        "face parser": (parser.network, lambda: execute(comfy, "SSDiffFaceParse", parser=parser, image=photo(),
                                                        regions="face", reference_compat=False)),
        "LaMa": (lama, lambda: execute(comfy, "SSDiffFillDamage", image=photo(), mask=mask, method="lama",
                                       dilation=2, radius=5.0, inpaint_model=lama)),
        "DDColor": (colouriser, lambda: execute(comfy, "SSDiffColourise", colouriser=colouriser, image=photo())),
        "RetinaFace": (retinaface.network, lambda: execute(
            comfy, "SSDiffFaceCrop", detector=retinaface, image=photo(64, 64), crop_size=64, selection="largest",
            index=0, min_eye_distance=0.0, confidence=0.0)),
        "ArcFace": (arcface, lambda: execute(comfy, "SSDiffIdentityAngle", face_recognition=arcface,
                                             faces=photo(64, 64), reference_faces=photo(64, 64))),
        "CAP-VSTNet": (transfer.network, lambda: execute(comfy, "SSDiffColourTransfer", content=photo(), style=photo(),
                                                         colour_transfer=transfer)),
        "BOPBTL mapping": (global_restoration.mapping, lambda: execute(
            comfy, "SSDiffGlobalRestoration", global_restoration=global_restoration, image=photo(),
            postprocess="model", mask_dilation=-1)),
    }


def test_each_network_is_loaded_by_comfyui_when_its_node_runs_and_released_by_unload(comfy, bopbtl_files,
                                                                                      ddcolor_file, lama_file):
    unload_all()
    for name, (network, run) in runs(comfy, bopbtl_files, ddcolor_file, lama_file).items():
        assert not is_loaded(network), f"{name} was loaded before its node ran"
        run()
        assert is_loaded(network), f"{name} is not under ComfyUI's model management after its node ran"
        unload_all()
        assert not is_loaded(network), f"{name} was not released by ComfyUI's unload"
        run()  # loaded again on the next run
        assert is_loaded(network), name
    unload_all()


def test_a_copy_of_a_managed_network_is_not_managed(comfy):
    from comfyui_ssdiff.comfy_adapter import managed

    detector, = execute(comfy, "SSDiffScratchDetectorLoader", model_name="FT_Epoch_latest.pt")
    assert managed.patcher_of(detector) is not None
    copied = copy.deepcopy(detector)
    assert managed.patcher_of(copied) is None
    managed.load(copied)  # nothing to load, nothing raised
    assert not is_loaded(copied)


RETRIED_WORK = {"SSDiffGlobalRestoration": ("restore_global", "chunk_bytes"), "SSDiffFillDamage": ("fill", "batch_pixels"),
                "SSDiffColourise": ("colourise", "rows")}
"""Each node that retries smaller on out of memory: the function it runs and the size it halves."""


@pytest.mark.parametrize("node", list(RETRIED_WORK))
def test_out_of_memory_at_the_first_size_retries_smaller_with_the_same_result(comfy, bopbtl_files, lama_file,
                                                                             ddcolor_file, monkeypatch, node):
    """A fake allocation failure the first time the work runs at its starting chunk, batch or band
    size: the node halves it and gives what one pass gives (the computation does not depend on it)."""
    import sys

    module = sys.modules[comfy.NODE_CLASS_MAPPINGS[node].__module__]
    name, keyword = RETRIED_WORK[node]
    real = getattr(module, name)
    sizes = []

    def failing_first(*args, **kwargs):
        sizes.append(kwargs[keyword])
        if len(sizes) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (a test's fake)")
        return real(*args, **kwargs)

    mask = torch.zeros(1, 48, 64)
    mask[0, 20, 4:60] = 1
    mask[0, 5:40, 30] = 1
    if node == "SSDiffGlobalRestoration":
        networks, = execute(comfy, "SSDiffGlobalRestorationLoader", encoder="restoration/VAE_A_quality/latest_net_G.pth",
                            mapping="restoration/mapping_scratch/latest_net_mapping_net.pth",
                            decoder="restoration/VAE_B_scratch/latest_net_G.pth")
        inputs = {"global_restoration": networks, "image": photo(48, 64), "mask": mask, "postprocess": "model",
                  "mask_dilation": -1}
    elif node == "SSDiffColourise":
        colouriser, = execute(comfy, "SSDiffColouriserLoader", model_name=ddcolor_file.name, input_size=64)
        inputs = {"colouriser": colouriser, "image": photo(48, 64)}
    else:
        lama, = execute(comfy, "SSDiffInpaintModelLoader", model_name=lama_file)
        inputs = {"image": photo(48, 64), "mask": mask, "method": "lama", "dilation": 2, "radius": 5.0,
                  "inpaint_model": lama}
    one_pass, = execute(comfy, node, **inputs)
    monkeypatch.setattr(module, name, failing_first)
    retried, = execute(comfy, node, **inputs)
    assert sizes[1] == sizes[0] // 2 and len(sizes) == 2
    torch.testing.assert_close(retried, one_pass, rtol=0, atol=1e-6)


def test_through_the_server_free_with_unload_models_releases_the_packs_networks(server):
    """What the frontend's *Unload models* button and the /free endpoint do, on the pack's networks:
    a Scratch Mask and a Face Parse run, then POST /free {"unload_models": true}; ComfyUI's model
    management (read by a test-only probe node in the server) holds them before, and not after."""
    import numpy as np
    from PIL import Image

    photo_name = "free_photo.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
        server.input_dir / photo_name)

    prompt = {
        "photo": {"class_type": "LoadImage", "inputs": {"image": photo_name}},
        "detector": {"class_type": "SSDiffScratchDetectorLoader", "inputs": {"model_name": "FT_Epoch_latest.pt"}},
        "mask": {"class_type": "SSDiffScratchMask", "inputs": {"detector": ["detector", 0], "image": ["photo", 0],
                                                              "threshold": 0.4, "dilation": 0,
                                                              "resize_mode": "full_size"}},
        "parser": {"class_type": "SSDiffFaceParserLoader", "inputs": {"model_name": "parsing_parsenet.pth"}},
        "parse": {"class_type": "SSDiffFaceParse", "inputs": {"parser": ["parser", 0], "image": ["photo", 0],
                                                             "regions": "face", "reference_compat": False}},
        "show_mask": {"class_type": "PreviewAny", "inputs": {"source": ["mask", 0]}},
        "show_parse": {"class_type": "PreviewAny", "inputs": {"source": ["parse", 1]}},
    }
    server.run(prompt)
    before = loaded_models(server, "before")
    assert "ScratchUNet" in before and any("Parse" in name or "BiSeNet" in name for name in before), before
    after = free_and_wait(server)
    assert "ScratchUNet" not in after and not any("Parse" in name or "BiSeNet" in name for name in after), after
