"""Writes the UI-format workflows (the format ComfyUI's frontend saves and loads) from the
API-format ones, built and saved by the real frontend in headless Chromium.

For each `shipped_workflows/<name>_api.json` listed in LAYOUTS, the script starts ComfyUI (`main.py --cpu`
on 127.0.0.1) with this pack, opens its frontend, creates the nodes with LiteGraph as a user
would (titles, widget values, links; seeds set to "fixed"), lays them out in the columns below,
puts ComfyUI's model links (`properties.models`, from the catalogue in models/files.py) on each
loader, adds a note naming every checkpoint the workflow needs and where it goes, and saves the graph with
`app.graph.serialize()`. It then checks that the frontend's own conversion (`app.graphToPrompt()`)
gives back exactly the API file, and writes

    shipped_workflows/<name>.json            the UI workflow
    example_workflows/<name>.json    the same file, for ComfyUI's template browser

The template browser's thumbnails (example_workflows/<name>.jpg) are made by
scripts/make_thumbnails.py from a run of each workflow, never from a screenshot here (on a machine
without the checkpoints the frontend shows its "Missing Models" dialog over the graph).

Run after a node's inputs change (then update the API file first):
    bash scripts/setup_browser.sh && .venv/bin/python scripts/export_ui_workflows.py
"""
from __future__ import annotations

import argparse
import json
import sys
import re
import tempfile
import uuid
from pathlib import Path

import requests
from playwright.sync_api import Page

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.browser import (SETUP_HINT, find_chromium, inspect_workflow, launch, offline_page,  # noqa: E402
                             open_comfyui)
from harness.headless import ComfyServer, default_host  # noqa: E402
from harness.catalogue_text import model_links, note_line  # noqa: E402
from harness.workflows import api_differences, files_by_node  # noqa: E402

_PYPROJECT = (REPO / "pyproject.toml").read_text()
PACK_ID = re.search(r'^name = "([^"]+)"', _PYPROJECT, re.M).group(1)
PACK_VERSION = re.search(r'^version = "([^"]+)"', _PYPROJECT, re.M).group(1)
"""properties.cnr_id / ver of our nodes: the registry id and version (pyproject.toml)."""
VIEW = (1600, 1000)
"""The browser's viewport; each workflow's saved view (extra.ds) frames the whole graph in it."""

FOOTER = ("Folders listed for `ssdiff`, `facedetection` or `facerestore_models` in `extra_model_paths.yaml` "
          "are searched too. `scripts/download_models.py` fetches every file into place and checks it. "
          "The face detector can also be MTCNN (built in, no download; `pip install --no-deps "
          "facenet-pytorch==2.6.0`). The checkpoints carry their own (partly non-commercial) licences.")


def note(api: dict, title: str, about: str, image: str) -> str:
    files = [entry for entries in files_by_node(api).values() for entry in entries]
    lines = [f"## {title}", "", about, "", "**Checkpoints** (choose each file in its loader node):",
             *[note_line(entry) for entry in files], "", f"**Input**: {image}", "", FOOTER]
    return "\n".join(lines)


LAYOUTS = {
    "aligned_face_restoration": {
        "columns": [["note"], [2, 3, 5, 7, 10], [4, 6, 8, 1], [9, 13], [11, 12]],
        "note": (
            "SSDiff: aligned face restoration",
            "An aligned old face (FFHQ alignment, e.g. from SSDiff Face Crop): scratch mask, coarse "
            "restoration R (CodeFormer, w = 0.5), parsing of R, stage 1 (pseudo-reference) and stage 2 "
            "(selective guided restoration) with the same seed. 2 x 100 steps take about 14 minutes on "
            "two CPU cores, seconds on a GPU.",
            "an aligned face in `ComfyUI/input/`; the pack's sample is `assets/sample/ssdiff_sample_face.png`."),
    },
    "whole_photo_restoration": {
        "columns": [["note"], [1, 2, 4, 6, 8], [3, 10, 12, 16], [5, 7, 9, 17], [11], [13], [14, 15]],
        "note": (
            "SSDiff: whole old photo",
            "Finds the faces (RetinaFace, or MTCNN, which needs no file), aligns each to the FFHQ 512 "
            "template, restores every face as in the aligned-face workflow (scratch mask, CodeFormer R, "
            "parsing, stage 1, stage 2), fills the scratches and dust of the whole photo at its own resolution "
            "(SSDiff Scratch Mask on the photo, SSDiff Fill Damage: OpenCV's Telea, no file; LaMa for larger "
            "breaks), and pastes the restored faces into the repaired photo with a feathered inverse affine.",
            "an old photo in `ComfyUI/input/`; the pack's samples are `assets/sample/ssdiff_sample_photo.png` "
            "(a synthetic face on a card) and `assets/sample/ssdiff_sample_old_photo.png` (a public-domain "
            "portrait aged by `scripts/age_photo.py`)."),
    },
    "family_album_restoration": {
        "columns": [["note"], [1, 16, 2, 4, 6, 8], [3, 17, 10, 12, 18], [5, 7, 9], [11], [13, 19], [14, 15]],
        "note": (
            "SSDiff: the person, from other photos of them",
            "The whole-photo workflow with identity guidance (as in PGDiff, NeurIPS 2023): other photos of the "
            "same person go through SSDiff Face Crop (no_face = refuse), ArcFace measures their identity, and "
            "stage 2 pulls each restored face towards it (identity_weight; 0 turns it off). SSDiff Identity "
            "Angle shows how far the result is from the references. The reference here is the photo itself, "
            "a placeholder: load your own photos of the person (several: batch them with Batch Images). "
            "It cannot restore a face from photos of someone else.",
            "an old photo in `ComfyUI/input/` and other photos of the same person; the pack's sample is "
            "`assets/sample/ssdiff_sample_old_photo.png`."),
    },
    "colourise_old_photo": {
        "columns": [["note"], [1, 2, 4, 6, 8], [3, 16, 17, 10, 12], [5, 7, 9, 18, 19, 20], [11], [13], [14, 15]],
        "note": (
            "SSDiff: the old photo in colour",
            "The whole-photo workflow in colour: the photo's scratches and dust are filled (SSDiff Scratch Mask "
            "on the photo, SSDiff Fill Damage), DDColor colourises the repaired photo (SSDiff Colourise keeps "
            "the photo's own full-resolution lightness, only the colour is DDColor's), the faces are restored "
            "by SSDiff from the original pixels with the colourised photo's faces (SSDiff Face Crop (same "
            "faces)) as stage 2's colour_reference, so face and photo agree, and pasted into the colourised "
            "photo (tone: restored). For the face in the photo's own tone without colourising, use the "
            "whole-photo workflow (Face Paste tone auto).",
            "an old photo in `ComfyUI/input/`; the pack's sample is `assets/sample/ssdiff_sample_old_photo.png` "
            "(a public-domain portrait aged by `scripts/age_photo.py`)."),
    },
    "sampler_custom_advanced": {
        "columns": [["note"], [2, 1, 3, 5, 7, 9], [4, 6, 8, 10, 12], [11, 13, 14, 15], [16, 17, 22],
                    [18], [19, 20, 21]],
        "note": (
            "SSDiff guidance in your own graph",
            "SSDiff Pseudo Reference Sampler and SSDiff Selective Sampler are SAMPLERs: plug them into "
            "SamplerCustomAdvanced (or SamplerCustom) like any sampler, with your own noise, guider and "
            "sigmas. Here: the face DDPM's MODEL, a CFG guider at cfg 1.0 with SSDiff Unconditional, 100 "
            "`simple` steps, and the face encoded by the loader's pixel VAE (the latent has the image's "
            "size). Stage 1's decoded output is stage 2's pseudo-reference; one RandomNoise feeds both "
            "stages, as in the paper. For an SD-type MODEL, connect its VAE to the samplers' `vae` input.",
            "an aligned face in `ComfyUI/input/`; the pack's sample is `assets/sample/ssdiff_sample_face.png`."),
    },
    "archive_restoration": {
        "columns": [["note"], [1, 2, 4, 6], [3, 5, 7], [8, 12], [9, 10, 11]],
        "note": (
            "SSDiff: an archive with a fine-tuned fast restorer",
            "Kuai et al. (WACV 2025): pseudo-targets from the face DDPM (each coarse restoration diffused to "
            "0.6 of the schedule and sampled back, its low frequencies held to the restoration's) fine-tune "
            "CodeFormer on the archive's own faces; the fine-tuned restorer then restores every face at its "
            "own speed and is saved into models/facerestore_models for the next photos (SSDiff Face Restorer "
            "Loader lists it). Run it on a few photos, then restore the rest with the saved restorer.",
            "an old photo in `ComfyUI/input/`; the pack's sample is `assets/sample/ssdiff_sample_photo.png`."),
    },
    "iterative_restoration": {
        "columns": [["note"], [2, 3, 5, 7, 10], [4, 6, 8, 1], [9, 13], [11, 12, 14, 15]],
        "note": (
            "SSDiff: iterative restoration",
            "IDM's extrinsic loop (ICCV 2023) around SSDiff's selective stage: each round's restoration is the "
            "next round's coarse restoration, until 3 rounds or a round that changes the face by less than "
            "0.002. The plot shows the change per round and how far the face regions (parser) drift.",
            "an aligned face in `ComfyUI/input/`; the pack's sample is `assets/sample/ssdiff_sample_face.png`."),
    },
}

BUILD_JS = r"""
(async ([api, spec]) => {
  await app.loadGraphData({last_node_id: 0, last_link_id: 0, nodes: [], links: [], groups: [], config: {},
                           extra: {}, version: 0.4}, true, false, spec.name);
  const graph = app.graph;
  const nodes = {};
  for (const [id, entry] of Object.entries(api)) {
    const node = LiteGraph.createNode(entry.class_type);
    if (!node) throw new Error(`the frontend does not know ${entry.class_type}`);
    node.id = +id;
    if (entry._meta?.title) node.title = entry._meta.title;
    graph.add(node);
    nodes[id] = node;
  }
  for (const [id, entry] of Object.entries(api)) {
    const node = nodes[id];
    for (const [name, value] of Object.entries(entry.inputs)) {
      if (Array.isArray(value)) {
        const target = node.inputs.findIndex(input => input.name === name);
        if (target < 0) throw new Error(`${entry.class_type} ${id} has no input ${name}`);
        const link = nodes[value[0]].connect(value[1], node, target);
        if (!link) throw new Error(`cannot link ${value} to ${entry.class_type} ${id}.${name}`);
      } else {
        const widget = node.widgets?.find(widget => widget.name === name);
        if (!widget) throw new Error(`${entry.class_type} ${id} has no widget ${name}`);
        widget.value = value;
      }
    }
    for (const widget of node.widgets ?? []) {
      if (widget.name === 'control_after_generate') widget.value = 'fixed';
    }
    const core = (node.constructor.nodeData?.python_module ?? '').split('.')[0];
    const ours = entry.class_type.startsWith('SSDiff');
    node.properties['Node name for S&R'] = entry.class_type;
    node.properties.cnr_id = ours ? spec.pack_id : (['nodes', 'comfy_extras'].includes(core) ? 'comfy-core' : undefined);
    node.properties.ver = ours ? spec.pack_version : spec.comfyui_version;
    if (spec.models[id]) node.properties.models = spec.models[id];
  }
  const note = LiteGraph.createNode('MarkdownNote');
  note.id = Math.max(...Object.keys(api).map(Number)) + 1;
  note.title = 'Checkpoints: what this workflow needs and where';
  graph.add(note);
  note.widgets[0].value = spec.note;
  note.size = [spec.note_width, spec.note_height];
  nodes.note = note;
  // Columns, left to right; nodes stacked top to bottom at the sizes the canvas gives them once
  // drawn (titles and widgets measured).
  app.canvas.setDirty(true, true);
  await new Promise(resolve => requestAnimationFrame(() => requestAnimationFrame(resolve)));
  for (const node of graph.nodes) {
    if (node === note) continue;
    const size = node.computeSize();
    // LoadImage shows the chosen image below its widgets: leave it room.
    const height = node.type === 'LoadImage' ? spec.image_preview_height : 0;
    node.setSize([Math.max(node.size[0], size[0]), Math.max(node.size[1], size[1], height)]);
  }
  let x = 0;
  for (const column of spec.columns) {
    let y = 0, width = 0;
    for (const key of column) {
      const node = nodes[key];
      node.pos = [x, y];
      y += node.size[1] + LiteGraph.NODE_TITLE_HEIGHT + spec.gap;
      width = Math.max(width, node.size[0]);
    }
    x += width + spec.gap * 2;
  }
  for (const node of graph.nodes) if (!spec.columns.flat().map(String).includes(String(
      node === note ? 'note' : node.id))) throw new Error(`node ${node.id} is in no column`);
  app.canvas.setDirty(true, true);
  return JSON.stringify({workflow: graph.serialize(), prompt: (await app.graphToPrompt()).output});
})
"""


MIN_SCALE = 0.6
"""The frontend draws nodes without their text below about 0.57 (its LOD font-size setting)."""


def graph_bounds(workflow: dict) -> tuple[float, float, float, float]:
    boxes = [(node["pos"][0], node["pos"][1] - 30, node["pos"][0] + node["size"][0], node["pos"][1] + node["size"][1])
             for node in workflow["nodes"]]
    return (min(box[0] for box in boxes), min(box[1] for box in boxes),
            max(box[2] for box in boxes), max(box[3] for box in boxes))


def fit_view(workflow: dict, margin: int = 40, left_bar: int = 0, top_bar: int = 0) -> dict:
    """A view (screen = (pos + offset) * scale) that shows the whole graph inside VIEW, centred."""
    left, top, right, bottom = graph_bounds(workflow)
    width, height = VIEW[0] - 2 * margin - left_bar, VIEW[1] - 2 * margin - top_bar
    scale = round(min(1.0, width / (right - left), height / (bottom - top)), 4)
    return {"scale": scale, "offset": [round((VIEW[0] + left_bar) / 2 / scale - (left + right) / 2, 1),
                                       round((VIEW[1] + top_bar) / 2 / scale - (top + bottom) / 2, 1)]}


def saved_view(workflow: dict) -> dict:
    """extra.ds of the saved workflow: the whole graph when it fits at a readable zoom, else the
    readable zoom with the graph's top left corner in view (the left and top bars allowed for)."""
    view = fit_view(workflow, left_bar=60, top_bar=100)
    if view["scale"] >= MIN_SCALE:
        return view
    left, top, _, _ = graph_bounds(workflow)
    return {"scale": MIN_SCALE, "offset": [round(100 / MIN_SCALE - left, 1), round(140 / MIN_SCALE - top, 1)]}


def export(page: Page, name: str, layout: dict, comfyui_version: str) -> dict:
    api = json.loads((REPO / "shipped_workflows" / f"{name}_api.json").read_text())
    spec = {"name": f"{name}.json", "columns": layout["columns"], "note": note(api, *layout["note"]), "gap": 30,
            "models": {node_id: model_links(entries) for node_id, entries in files_by_node(api).items()},
            "note_width": 420, "note_height": 520, "image_preview_height": 320, "pack_id": PACK_ID, "pack_version": PACK_VERSION,
            "comfyui_version": comfyui_version}
    result = json.loads(page.evaluate(BUILD_JS, [api, spec]))
    problems = api_differences(result["prompt"], api)
    if problems:
        raise SystemExit(f"{name}: the frontend's prompt differs from shipped_workflows/{name}_api.json:\n  "
                         + "\n  ".join(problems))
    workflow = result["workflow"]
    workflow["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"ssdiff/workflows/{name}"))
    workflow.setdefault("extra", {})["ds"] = saved_view(workflow)
    return workflow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", default=list(LAYOUTS), help="workflows to export (default: all)")
    parser.add_argument("--host", type=Path, default=default_host(),
                        help="the ComfyUI root (default: the host setup_host.sh built for this Python)")
    args = parser.parse_args()
    if find_chromium() is None:
        raise SystemExit(f"no Chromium: {SETUP_HINT}")
    (REPO / "example_workflows").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ssdiff-export-") as work, \
            ComfyServer(args.host, Path(work) / "server") as server, \
            launch() as browser, offline_page(browser, *VIEW) as tab:
        comfyui_version = requests.get(f"{server.url}/system_stats", timeout=10).json()["system"]["comfyui_version"]
        page = tab.page
        open_comfyui(page, server.url)
        for name in args.names:
            workflow = export(page, name, LAYOUTS[name], comfyui_version)
            text = json.dumps(workflow, indent=2, ensure_ascii=False) + "\n"
            for folder in ("shipped_workflows", "example_workflows"):
                (REPO / folder / f"{name}.json").write_text(text)
            report = inspect_workflow(page, workflow, f"{name}.json")  # reopened as a user would
            # Frontend 1.32 opens its "Missing Models" dialog: this server has no checkpoint.
            dialogs = [text for text in report["dialogs"] if not text.startswith("Missing Models")]
            if report["unregistered"] or report["with_errors"] or dialogs:
                raise SystemExit(f"{name}: the frontend does not open it cleanly: {report}")
            print(f"wrote shipped_workflows/{name}.json and example_workflows/{name}.json "
                  f"({len(workflow['nodes'])} nodes, {len(workflow['links'])} links)")
            if not (REPO / "example_workflows" / f"{name}.jpg").exists():
                print(f"  {name} has no thumbnail: run scripts/make_thumbnails.py {name}")


if __name__ == "__main__":
    main()
