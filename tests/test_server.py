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

WORKFLOWS = REPO / "shipped_workflows"
SAMPLE = REPO / "assets" / "sample"
NODE_IDS = ("SSDiffFaceDiffusionLoader", "SSDiffUnconditional", "SSDiffPseudoReference", "SSDiffSampler",
            "SSDiffPseudoReferenceSampler", "SSDiffSelectiveSampler", "SSDiffLabelMapToParsing",
            "SSDiffFaceDetectorLoader", "SSDiffFaceCrop", "SSDiffFacePaste", "SSDiffScratchDetectorLoader",
            "SSDiffScratchMask", "SSDiffFaceRestorerLoader", "SSDiffCoarseRestore", "SSDiffFaceParserLoader",
            "SSDiffFaceParse", "SSDiffColourTransferLoader", "SSDiffColourTransfer", "SSDiffPseudoTargets",
            "SSDiffPseudoTargetSampler", "SSDiffFineTuneRestorer", "SSDiffIterate",
            "SSDiffFaceRecognitionLoader", "SSDiffPerceptualLossLoader", "SSDiffIdentityAngle")
TEST_FILES = {"SSDiffFaceDiffusionLoader": ("ckpt_name", "tiny_face_ddpm.pth"),
              "SSDiffFaceDetectorLoader": ("model_name", "detection_mobilenet0.25_Final.pth")}
"""Loader inputs the tests point at the tiny networks (the others have their published names)."""


@pytest.fixture(scope="module")
def object_info(server):
    return requests.get(f"{server.url}/object_info", timeout=30).json()


def shipped_workflow(server, name: str = "aligned_face_restoration_api.json", steps: int = 3,
                     crop_size: int | None = None) -> dict:
    """A shipped workflow on the bundled sample, with the tiny test networks, few steps and, if
    given, faces cropped at `crop_size` px (the tiny networks take any size; 512 px faces cost a
    whole-photo run most of its time)."""
    for image in SAMPLE.glob("*.png"):
        shutil.copy(image, server.input_dir / image.name)
    prompt = json.loads((WORKFLOWS / name).read_text())
    for node in prompt.values():
        if node["class_type"] in TEST_FILES:
            key, file_name = TEST_FILES[node["class_type"]]
            node["inputs"][key] = file_name
        if "steps" in node["inputs"]:
            node["inputs"]["steps"] = steps
        if crop_size is not None and node["class_type"] == "SSDiffFaceCrop":
            node["inputs"]["crop_size"] = crop_size
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


@pytest.mark.parametrize("workflow", sorted(path.name for path in WORKFLOWS.glob("*_api.json")))
def test_every_api_workflow_matches_the_nodes_declarations(object_info, workflow):
    prompt = json.loads((WORKFLOWS / workflow).read_text())
    for node_id, node in prompt.items():
        declared = object_info.get(node["class_type"])
        assert declared is not None, f"{workflow} node {node_id}: unknown type {node['class_type']}"
        inputs = {**declared["input"].get("required", {}), **declared["input"].get("optional", {})}
        for name, value in node["inputs"].items():
            assert name in inputs, f"{workflow} node {node_id} ({node['class_type']}): no input '{name}'"
            if isinstance(value, list):
                source = prompt[value[0]]
                output_type = object_info[source["class_type"]]["output"][value[1]]
                assert output_type == inputs[name][0], f"{workflow} node {node_id}.{name}: {output_type} link"
        missing = set(declared["input"].get("required", {})) - set(node["inputs"])
        assert not missing, f"{workflow} node {node_id} ({node['class_type']}) lacks {sorted(missing)}"


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
        del prompt["13"]
        return prompt

    prompt = restoration_only(shipped_workflow(server))
    prompt["11"]["inputs"].update(s_start=0.5, s_end=0.9)
    response = server.queue(prompt)
    assert response.status_code == 400
    assert "s_end <= s_start" in response.text

    prompt = restoration_only(shipped_workflow(server))
    prompt["11"]["inputs"]["t1"] = 1.5
    response = server.queue(prompt)
    assert response.status_code == 400 and "t1" in response.text

    prompt = shipped_workflow(server)
    prompt["1"]["inputs"]["ckpt_name"] = "iddpm_ffhq512_ema500000.pth"
    response = server.queue(prompt)
    assert response.status_code == 400
    assert "iddpm_ffhq512_ema500000.pth" in response.text and "DifFace" in response.text

    assert server.output_images(server.run(shipped_workflow(server, steps=2)))
