"""Whatever sits in the models folders, the pack loads, lists its nodes and keeps serving (issue 26):
a real server started on models folders holding every oddity a user's disk or another pack puts
there (broken links to a drive that is not mounted, files cut short or being written, a directory
and a named pipe under checkpoint names, a damaged zip, a 2 GiB file of another kind, a thousand
other packs' files), and a prompt that asks the fine-tuner to read folders outside ComfyUI's own."""
from __future__ import annotations

import json
import os
import re
import shutil
import struct
from pathlib import Path

import pytest
import requests
import torch
from safetensors.torch import save_file

from damaged_checkpoints import with_storage_claim
from harness.headless import ComfyServer

from robustness_support import assert_still_serves, execution_error, refused

LOADERS = {
    "SSDiffFaceDiffusionLoader": ("ckpt_name", {"weight_dtype": "fp32"}),
    "SSDiffScratchDetectorLoader": ("model_name", {}),
    "SSDiffColourTransferLoader": ("model_name", {}),
    "SSDiffFaceParserLoader": ("model_name", {}),
    "SSDiffFaceDetectorLoader": ("model_name", {}),
    "SSDiffFaceRestorerLoader": ("model_name", {}),
    "SSDiffFaceRecognitionLoader": ("model_name", {}),
    "SSDiffPerceptualLossLoader": ("model_name", {"weight": 0.1}),
}
OFFLINE = "/nonexistent-drive/ComfyUI/models"


def storage_claiming(target: Path, numel: int) -> Path:
    """A torch zip checkpoint with the scratch detector's first key whose storage claims `numel`
    floats while the file holds 1000 (issue 26's damaged .pth)."""
    source = target.with_suffix(".whole")
    torch.save({"model_state": {"first.1.weight": torch.zeros(1000)}}, source)
    with_storage_claim(source, target, numel)
    source.unlink()
    return target


def sparse_safetensors(path: Path, key: str, gib: int) -> Path:
    """A valid .safetensors file of `gib` GiB whose data is a hole (no disk used): a large
    checkpoint of another kind, as a Stable Diffusion file is."""
    count = (gib << 30) // 2
    header = json.dumps({key: {"dtype": "F16", "shape": [count], "data_offsets": [0, count * 2]}}).encode()
    header += b" " * (-len(header) % 8)
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(header)) + header)
        handle.truncate(8 + len(header) + count * 2)
    return path


@pytest.fixture(scope="module")
def odd_root(models_root, tmp_path_factory) -> Path:
    """The suite's models folders (their files linked in: models on another drive), plus every
    oddity of issue 26."""
    root = tmp_path_factory.mktemp("odd_models")
    for folder in models_root.iterdir():
        (root / folder.name).mkdir()
        for path in folder.iterdir():
            if path.name != "parsing_bisenet.pth":
                (root / folder.name / path.name).symlink_to(path)
    ssdiff, detection, restore = root / "ssdiff", root / "facedetection", root / "facerestore_models"
    (ssdiff / "unet_on_offline_drive.pth").symlink_to(f"{OFFLINE}/unet.pth")
    (detection / "detection_Resnet50_Final.pth").symlink_to(f"{OFFLINE}/detection_Resnet50_Final.pth")
    (restore / "RestoreFormer.pth").symlink_to(f"{OFFLINE}/RestoreFormer.pth")
    whole = (models_root / "ssdiff" / "tiny_face_ddpm.pth").read_bytes()
    (ssdiff / "half_copied_unet.pth").write_bytes(whole[: len(whole) // 2])
    whole = (models_root / "ssdiff" / "tiny_face_ddpm.safetensors").read_bytes()
    (ssdiff / "being_written.safetensors").write_bytes(whole[: len(whole) // 3])
    whole = (models_root / "facedetection" / "parsing_bisenet.pth").read_bytes()
    (detection / "parsing_bisenet.pth").write_bytes(whole[: len(whole) // 2])
    (ssdiff / "a_folder.pth").mkdir()
    (restore / "codeformer_v2.pth").mkdir()
    os.mkfifo(ssdiff / "a_pipe.pt")
    os.mkfifo(restore / "GPEN-BFR-512.pth")
    storage_claiming(ssdiff / "damaged_detector.pth", 10**12)
    sparse_safetensors(ssdiff / "sd_xl_base_1.0.safetensors", "model.diffusion_model.input_blocks.0.0.weight", 2)
    (ssdiff / "notes.pth").write_text("not a checkpoint")
    (ssdiff / "empty.pt").write_bytes(b"")
    others = detection / "other_pack"
    others.mkdir()
    for index in range(1000):
        save_file({f"model.{index}.weight": torch.zeros(4)}, str(others / f"yolo_part_{index:04d}.safetensors"))
    return root


@pytest.fixture(scope="module")
def odd_server(odd_root, tmp_path_factory, server):
    from conftest import HOST, HOST_PROBES

    with ComfyServer(HOST, tmp_path_factory.mktemp("odd_server"), odd_root, custom_nodes=HOST_PROBES) as running:
        yield running


def object_info(server) -> dict:
    return requests.get(f"{server.url}/object_info", timeout=60).json()


def options(info: dict, node: str) -> list[str]:
    input_name, _ = LOADERS[node]
    spec = info[node]["input"]["required"][input_name]
    return spec[1]["options"] if spec[0] == "COMBO" else spec[0]


def through_any_type(node: str, name: str) -> dict:
    """The loader given `name` through a link (as a switch or reroute node passes it), so that the
    loader itself meets the name instead of ComfyUI's list check."""
    input_name, extra = LOADERS[node]
    return {"1": {"class_type": "PrimitiveString", "inputs": {"value": name}},
            "2": {"class_type": "RobustnessProbeAnyType", "inputs": {"value": ["1", 0]}},
            "3": {"class_type": node, "inputs": {input_name: ["2", 0], **extra}},
            "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}}}


def chosen(node: str, name: str) -> dict:
    input_name, extra = LOADERS[node]
    return {"3": {"class_type": node, "inputs": {input_name: name, **extra}},
            "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}}}


def test_the_pack_imports_and_lists_every_node_and_each_loader_its_own_files(odd_server, server):
    log = odd_server.log_text()
    assert not re.search(r"IMPORT FAILED.*ComfyUI-SSDiff", log), log[-3000:]
    assert "Error while calling comfy_entrypoint" not in log
    odd, usual = object_info(odd_server), object_info(server)
    pack_nodes = {node for node, info in usual.items() if info.get("python_module", "").endswith("ComfyUI-SSDiff")
                  or node.startswith("SSDiff")}
    assert len(pack_nodes) > 20 and pack_nodes <= set(odd)
    for node in LOADERS:
        listed, expected = options(odd, node), options(usual, node)
        if node == "SSDiffFaceDetectorLoader":  # a published name is offered, even on a drive that is away
            expected = ["detection_Resnet50_Final.pth"] + expected
        assert listed == expected, node
    for _ in range(2):
        object_info(odd_server)
    log = odd_server.log_text()
    for name in ("unet_on_offline_drive.pth", "half_copied_unet.pth", "being_written.safetensors", "a_pipe.pt",
                 "damaged_detector.pth", "notes.pth", "empty.pt", "RestoreFormer.pth", "GPEN-BFR-512.pth"):
        lines = [line for line in log.splitlines() if "SSDiff: " in line and f"/{name}' is " in line]
        assert len(lines) == 1, (name, lines)


@pytest.mark.parametrize("node, name, words", [
    ("SSDiffFaceDiffusionLoader", "unet_on_offline_drive.pth", "is missing (a symbolic link whose target does not"),
    ("SSDiffFaceDiffusionLoader", "half_copied_unet.pth", "is truncated (its zip index"),
    ("SSDiffFaceDiffusionLoader", "being_written.safetensors", "is truncated (its header lists"),
    ("SSDiffFaceDiffusionLoader", "a_folder.pth", "is not a regular file (a directory"),
    ("SSDiffScratchDetectorLoader", "a_pipe.pt", "is not a regular file (a named pipe"),
    ("SSDiffScratchDetectorLoader", "damaged_detector.pth", "is damaged (a tensor's bytes would lie past the file"),
    ("SSDiffScratchDetectorLoader", "notes.pth", "is not a checkpoint ("),
    ("SSDiffScratchDetectorLoader", "empty.pt", "is empty (0 bytes)"),
    ("SSDiffFaceDiffusionLoader", "sd_xl_base_1.0.safetensors", "is not a guided-diffusion face DDPM checkpoint: it is "
                                                                "another kind of network"),
    ("SSDiffFaceRestorerLoader", "RestoreFormer.pth", "is missing"),
    ("SSDiffFaceRestorerLoader", "GPEN-BFR-512.pth", "is not a regular file (a named pipe"),
    ("SSDiffFaceParserLoader", "other_pack/yolo_part_0007.safetensors", "is not a face parser: it is another kind"),
])
def test_each_odd_entry_chosen_gets_its_own_message_and_the_server_keeps_serving(odd_server, node, name, words):
    text = execution_error(odd_server, through_any_type(node, name))
    assert re.search(rf"'{re.escape(os.path.basename(name))}'[^\"]*? {re.escape(words)}", text), text
    assert "Expected " in text and "https://" in text, "the refusal names the file expected and where to get it"
    assert " from " + LOADERS[node][0] not in text


def test_a_published_name_that_is_a_broken_link_is_listed_and_refused_at_validation(odd_server):
    text = refused(odd_server, chosen("SSDiffFaceDetectorLoader", "detection_Resnet50_Final.pth"))
    assert "could not read 'detection_Resnet50_Final.pth' as a RetinaFace face detector: it is missing (a symbolic " \
           "link" in text, text
    text = execution_error(odd_server, chosen("SSDiffFaceParserLoader", "parsing_bisenet.pth"))
    assert "could not read 'parsing_bisenet.pth' as a face parser: it is truncated" in text, text
    assert "; get resnet34.pt from https://" in text and "; parsing_bisenet.pth from https://" in text, text


def test_a_file_that_vanishes_after_it_was_listed_is_named_not_found(odd_server, odd_root):
    copy = odd_root / "facerestore_models" / "vanishing_restorer.pth"
    shutil.copy(odd_root / "facerestore_models" / "codeformer.pth", copy)
    assert "vanishing_restorer.pth" in options(object_info(odd_server), "SSDiffFaceRestorerLoader")
    copy.unlink()
    text = execution_error(odd_server, through_any_type("SSDiffFaceRestorerLoader", "vanishing_restorer.pth"))
    assert "'vanishing_restorer.pth' not found in" in text, text


def server_bytes_read(server) -> int:
    io_lines = Path(f"/proc/{server.process.pid}/io").read_text().splitlines()
    return int(next(line for line in io_lines if line.startswith("rchar")).split()[1])


def test_listing_new_checkpoints_of_other_packs_reads_none_of_their_tensor_data(odd_server, odd_root):
    """/object_info after 100 new 1 MiB checkpoints (and the 2 GiB file) arrived: their names are
    read, never their data."""
    arrived = odd_root / "ssdiff" / "other_pack_arrived"
    arrived.mkdir()
    for index in range(100):
        torch.save({f"net.{index}.weight": torch.zeros(1 << 18)}, arrived / f"lora_{index:03d}.pth")
    size = sum(path.stat().st_size for path in arrived.iterdir()) + (2 << 30)
    before = server_bytes_read(odd_server)
    info = object_info(odd_server)
    read = server_bytes_read(odd_server) - before
    assert read < size / 200, f"/object_info read {read:,} bytes of {size:,}"
    assert not any(name.startswith("other_pack_arrived/") for name in options(info, "SSDiffFaceDiffusionLoader"))
    assert_still_serves(odd_server)


def test_pairs_folder_reads_only_inside_comfyuis_folders_and_names_nothing_outside(odd_server, tmp_path_factory):
    """An absolute path, '..', '~' and links out of the input folder are refused through the server
    with the same words whether or not what they point at exists."""
    outside = tmp_path_factory.mktemp("private_disk")
    for sub in ("degraded", "targets"):
        (outside / "pairs" / sub).mkdir(parents=True)
        shutil.copy(Path(__file__).resolve().parents[2] / "assets" / "sample" / "ssdiff_sample_old_photo.png",
                    outside / "pairs" / sub / "secret_face.png")
    inside = odd_server.input_dir
    (inside / "link_out").symlink_to(outside / "pairs")
    (inside / "link_nowhere").symlink_to(outside / "no_such_folder")
    for sub in ("degraded", "targets"):
        (inside / "linked_images" / sub).mkdir(parents=True)
        (inside / "linked_images" / sub / "face.png").symlink_to(outside / "pairs" / sub / "secret_face.png")
    relative_out = os.path.relpath(outside / "pairs", inside)
    refusals = {}
    for value in (str(outside / "pairs"), str(outside / "nothing_here"), relative_out, "../../../etc",
                  "~/pairs", "link_out", "link_nowhere", "/etc [input]"):
        prompt = {"1": {"class_type": "SSDiffFaceRestorerLoader", "inputs": {"model_name": "codeformer.pth"}},
                  "2": {"class_type": "SSDiffFineTuneRestorer",
                        "inputs": {"restorer": ["1", 0], "steps": 1, "learning_rate": 1e-4, "batch_size": 1,
                                   "seed": 0, "ema_decay": 0.0, "train": "transformer_only", "save_name": "",
                                   "pairs_folder": value}},
                  "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 2]}}}
        text = execution_error(odd_server, prompt)
        assert "pairs_folder:" in text and "is not a folder name inside ComfyUI's" in text, (value, text)
        assert "secret_face" not in text and str(outside) not in text.replace(value, ""), (value, text)
        message = re.search(r'"exception_message": "(.*?)(?<!\\)"', text).group(1)
        refusals[value] = message.replace(json.dumps(value)[1:-1], "VALUE")
    assert len(set(refusals.values())) == 1, "every way out is refused in the same words"
    prompt["2"]["inputs"]["pairs_folder"] = "linked_images"
    text = execution_error(odd_server, prompt)
    assert "links out of ComfyUI's input folder" in text and "secret_face" not in text and str(outside) not in text
    assert_still_serves(odd_server)
