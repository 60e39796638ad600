"""The pack in a running ComfyUI server: registration, the shipped workflow through /prompt,
and refusals at validation time."""
from __future__ import annotations

import json
import re
import shutil

import pytest
import requests
from PIL import Image

from conftest import REPO

WORKFLOW = REPO / "workflows" / "aligned_face_restoration_api.json"
SAMPLE = REPO / "assets" / "sample"
NODE_IDS = ("SSDiffFaceDiffusionLoader", "SSDiffUnconditional", "SSDiffPseudoReference", "SSDiffSampler",
            "SSDiffPseudoReferenceSampler", "SSDiffSelectiveSampler", "SSDiffLabelMapToParsing")


@pytest.fixture(scope="module")
def object_info(server):
    return requests.get(f"{server.url}/object_info", timeout=30).json()


def shipped_workflow(server, steps: int = 3) -> dict:
    """The shipped workflow on the bundled sample, with the tiny test DDPM and few steps."""
    for image in SAMPLE.glob("*.png"):
        shutil.copy(image, server.input_dir / image.name)
    prompt = json.loads(WORKFLOW.read_text())
    for node in prompt.values():
        if node["class_type"] == "SSDiffFaceDiffusionLoader":
            node["inputs"]["ckpt_name"] = "tiny_face_ddpm.pth"
        if "steps" in node["inputs"]:
            node["inputs"]["steps"] = steps
    return prompt


def test_pack_imports_cleanly(server):
    log = server.log_text()
    assert not re.search(r"IMPORT FAILED.*ComfyUI-SSDiff", log), log
    assert "ComfyUI-SSDiff" in log


def test_nodes_are_listed_with_their_types(object_info):
    for node_id in NODE_IDS:
        assert node_id in object_info, node_id
        assert object_info[node_id]["category"].startswith("SSDiff")
    assert object_info["SSDiffFaceDiffusionLoader"]["output"] == ["MODEL", "VAE"]
    ckpt_name = object_info["SSDiffFaceDiffusionLoader"]["input"]["required"]["ckpt_name"]
    options = ckpt_name[1]["options"] if ckpt_name[0] == "COMBO" else ckpt_name[0]
    assert "tiny_face_ddpm.pth" in options
    sampler = object_info["SSDiffSampler"]["input"]
    assert sampler["required"]["model"][0] == "MODEL"
    assert sampler["required"]["image"][0] == "IMAGE"
    assert sampler["required"]["pseudo_reference"][0] == "IMAGE"
    assert sampler["optional"]["scratch_mask"][0] == "MASK"
    assert sampler["optional"]["parsing"][0] == "SSDIFF_PARSING"
    assert sampler["required"]["t1"][1]["default"] == 0.4
    assert object_info["SSDiffSampler"]["output"] == ["IMAGE"]
    assert object_info["SSDiffPseudoReference"]["output"] == ["IMAGE"]
    assert object_info["SSDiffSelectiveSampler"]["output"] == ["SAMPLER"]
    assert object_info["SSDiffPseudoReferenceSampler"]["output"] == ["SAMPLER"]
    assert object_info["SSDiffLabelMapToParsing"]["output"] == ["SSDIFF_PARSING"]


def test_shipped_workflow_runs_and_writes_images(server):
    entry = server.run(shipped_workflow(server))
    images = server.output_images(entry)
    assert {path.name.split("_0")[0] for path in images} == {"restored", "pseudo_reference"}
    for path in images:
        assert path.exists()
        with Image.open(path) as image:
            assert image.size == (256, 256)


def test_bad_schedule_is_refused_before_running_and_the_server_keeps_serving(server):
    def restoration_only(prompt: dict) -> dict:
        # ComfyUI still runs the outputs a refused node does not feed: keep only the restoration.
        del prompt["10"]
        return prompt

    prompt = restoration_only(shipped_workflow(server))
    prompt["8"]["inputs"].update(s_start=0.5, s_end=0.9)
    response = server.queue(prompt)
    assert response.status_code == 400
    assert "s_end <= s_start" in response.text

    prompt = restoration_only(shipped_workflow(server))
    prompt["8"]["inputs"]["t1"] = 1.5
    response = server.queue(prompt)
    assert response.status_code == 400 and "t1" in response.text

    prompt = shipped_workflow(server)
    prompt["1"]["inputs"]["ckpt_name"] = "iddpm_ffhq512_ema500000.pth"
    response = server.queue(prompt)
    assert response.status_code == 400
    assert "iddpm_ffhq512_ema500000.pth" in response.text and "DifFace" in response.text

    assert server.output_images(server.run(shipped_workflow(server, steps=2)))
