"""The catalogue of model files (models/files.py) is the one source of the loaders' messages and
file lists, the README's table and the workflows' notes; each loader offers the files of its kind."""
from __future__ import annotations

import json
import re

import pytest

from conftest import REPO
from harness.catalogue_text import README_TABLE_END, README_TABLE_START, model_links, note_line, readme_table
from comfyui_ssdiff.models import (bopbtl_global, cap_vstnet, ddcolor, face_parsing, face_recognition, face_restorers,
                                   guided_diffusion, lama, mtcnn, perceptual_loss, retinaface, scratch_detection)
from comfyui_ssdiff.models.files import CATALOGUE, MODEL_FOLDERS, Kind, catalogue_file
from node_runner import execute
from test_workflows_ui import UI_WORKFLOWS

KINDS = {file.kind: file for file in
         (*(network.FILE for network in (guided_diffusion, scratch_detection, cap_vstnet, face_parsing, retinaface,
                                         face_restorers, face_recognition, perceptual_loss, lama, ddcolor)),
          bopbtl_global.ENCODER_FILE, bopbtl_global.MAPPING_FILE, bopbtl_global.DECODER_FILE)}


def test_every_file_is_catalogued_once_with_an_https_source_and_a_well_formed_digest():
    names = [entry.name for entry in CATALOGUE]
    assert len(names) == len(set(names))
    assert set(KINDS) == set(Kind), "every kind has a loader and every loader a kind"
    for entry in CATALOGUE:
        assert entry.folder in MODEL_FOLDERS and entry.url.startswith("https://") and entry.page.startswith("https://")
        assert entry.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", entry.sha256), entry.name
        assert entry.size is None or entry.size > 0
        assert (entry.download_url is None) == (entry.member is not None)
        assert catalogue_file(entry.name) is entry


def test_the_readme_table_is_the_catalogue():
    readme = (REPO / "README.md").read_text()
    start, end = readme.index(README_TABLE_START), readme.index(README_TABLE_END) + len(README_TABLE_END)
    assert readme[start:end] == readme_table(), "run scripts/write_catalogue_table.py"


def test_a_missing_file_is_named_with_its_folders_and_every_source_of_its_kind(comfy):
    message = comfy.NODE_CLASS_MAPPINGS["SSDiffFaceParserLoader"].validate_inputs(model_name="no_parser.pth")
    assert "no_parser.pth" in message and "not found" in message
    for entry in face_parsing.FILE.files:
        assert entry.name in message and entry.url in message


@pytest.fixture
def model_folders(comfy, models_root, tmp_path, monkeypatch):
    """Model folders holding the test networks under their published names and under names of
    the user's own (renamed copies)."""
    import folder_paths

    layout = {
        "ssdiff": {"FT_Epoch_latest.pt": "ssdiff/FT_Epoch_latest.pt", "photo_image.pt": "ssdiff/photo_image.pt",
                   "resnet34.pt": "ssdiff/resnet34.pt", "my_face_ddpm.pth": "ssdiff/tiny_face_ddpm.pth",
                   "my_face_ddpm.safetensors": "ssdiff/tiny_face_ddpm.safetensors",
                   "scratches_v2.pt": "ssdiff/FT_Epoch_latest.pt", "lpips_vgg.pth": "ssdiff/vgg16-397923af.pth"},
        "facedetection": {"detection_mobilenet0.25_Final.pth": "facedetection/detection_mobilenet0.25_Final.pth",
                          "parsing_parsenet.pth": "facedetection/parsing_parsenet.pth",
                          "my_bisenet.pth": "facedetection/parsing_bisenet.pth",
                          "my_retinaface.pth": "facedetection/detection_mobilenet0.25_Final.pth",
                          "my_arcface.pth": "facedetection/recognition_arcface_ir_se50.pth"},
        "facerestore_models": {"codeformer.pth": "facerestore_models/codeformer.pth",
                               "CodeFormer_v2.pth": "facerestore_models/codeformer.pth"},
    }
    for folder, files in layout.items():
        (tmp_path / folder).mkdir()
        for name, source in files.items():
            (tmp_path / folder / name).symlink_to(models_root / source)
        extensions = folder_paths.folder_names_and_paths[folder][1]
        monkeypatch.setitem(folder_paths.folder_names_and_paths, folder, ([str(tmp_path / folder)], extensions))
    monkeypatch.setattr(folder_paths, "filename_list_cache", {})
    return tmp_path


def offered(comfy, node_id: str, input_name: str = "model_name") -> list[str]:
    schema = comfy.NODE_CLASS_MAPPINGS[node_id].define_schema()
    return next(item.options for item in schema.inputs if item.id == input_name)


def test_each_loader_offers_its_own_files_known_names_first_and_renamed_files_where_they_fit(comfy, model_folders):
    assert offered(comfy, "SSDiffFaceDiffusionLoader", "ckpt_name") == ["my_face_ddpm.pth", "my_face_ddpm.safetensors"]
    assert offered(comfy, "SSDiffScratchDetectorLoader") == ["FT_Epoch_latest.pt", "scratches_v2.pt"]
    assert offered(comfy, "SSDiffColourTransferLoader") == ["photo_image.pt"]
    assert offered(comfy, "SSDiffFaceParserLoader") == ["resnet34.pt", "parsing_parsenet.pth", "my_bisenet.pth"]
    assert offered(comfy, "SSDiffFaceDetectorLoader") == ["detection_mobilenet0.25_Final.pth", "my_retinaface.pth",
                                                          mtcnn.CHOICE]
    assert offered(comfy, "SSDiffFaceRestorerLoader") == ["codeformer.pth", "CodeFormer_v2.pth"]
    assert offered(comfy, "SSDiffFaceRecognitionLoader") == ["my_arcface.pth"]
    assert offered(comfy, "SSDiffPerceptualLossLoader") == ["lpips_vgg.pth"]


def test_a_renamed_file_loads(comfy, model_folders):
    model, _ = execute(comfy, "SSDiffFaceDiffusionLoader", ckpt_name="my_face_ddpm.safetensors", weight_dtype="fp32")
    assert model.model.diffusion_model is not None
    parser, = execute(comfy, "SSDiffFaceParserLoader", model_name="my_bisenet.pth")
    assert parser.backend == "bisenet_facexlib"


@pytest.mark.parametrize("name", UI_WORKFLOWS)
def test_each_loader_of_a_shipped_workflow_links_its_catalogue_file(name):
    workflow = json.loads((REPO / "shipped_workflows" / f"{name}.json").read_text())
    assert workflow == json.loads((REPO / "example_workflows" / f"{name}.json").read_text())
    note = next(node for node in workflow["nodes"] if node["type"] == "MarkdownNote")["widgets_values"][0]
    linked = 0
    for node in workflow["nodes"]:
        entries = [catalogue_file(value) for value in node.get("widgets_values") or [] if isinstance(value, str)]
        entries = [entry for entry in entries if entry]
        assert node["properties"].get("models", []) == model_links(entries), f"{name} node {node['id']}"
        for entry in entries:
            assert note_line(entry) in note
            linked += 1
    assert linked == sum(node["type"].endswith("Loader") for node in workflow["nodes"]) >= 3
