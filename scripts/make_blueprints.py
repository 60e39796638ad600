"""Writes the pack's subgraph blueprints, subgraphs/<name>.json: the common jobs of the shipped
workflows as one node each, listed by ComfyUI (GET /global_subgraphs reads
custom_nodes/*/subgraphs/*.json) in the frontend's node library under "Subgraph Blueprints".

Each blueprint is made by the real ComfyUI frontend (1.49 or later: ComfyUI 0.33's) in headless
Chromium, from the shipped UI workflow, as a user would make it:

1. the workflow (shipped_workflows/<name>.json) is opened;
2. every node but its LoadImage, SaveImage, PreviewImage and notes is selected and converted to a
   subgraph (the frontend's command Comfy.Graph.ConvertToSubgraph): the links from the LoadImage
   become the subgraph's IMAGE input, those into each SaveImage / PreviewImage its outputs (made
   again in the order of `Blueprint.outputs`, as a user drags an inner output onto the output node);
3. the widget inputs the conversion promoted by itself (the seeds) are removed, and the widgets of
   `Blueprint.promoted` are promoted instead, in that order, each as a user drags an inner widget's
   input onto the subgraph's input node (one subgraph input may feed several inner widgets: stage 1
   and stage 2 share one seed and one step count), and given its label; inputs and outputs are
   labelled, and the node widened to NODE_WIDTH;
4. the prompt the frontend would queue (app.graphToPrompt()) must be the shipped API workflow
   (shipped_workflows/<name>_api.json), node for node, input for input: the blueprint computes what the
   workflow computes;
5. the LoadImage, SaveImage, PreviewImage and note nodes are deleted and the subgraph node is
   published with the frontend's own "Add Subgraph to Library" (the subgraph store's
   publishSubgraph), which saves it to the user's blueprints; that file is read back and written
   to subgraphs/<name>.json with one field added: the subgraph's `category` (frontend 1.49 shows
   it as "Subgraph Blueprints/<category>"; the frontend has no way to set it, ComfyUI's own
   blueprints carry it beside `description`), and the random UUIDs of the subgraph and its slots
   replaced by ones made from the name (a second run writes the same files).

The frontend is shown no installed blueprint while it builds (GET /global_subgraphs answers {}):
otherwise publishing under the name of an installed one would ask to overwrite it.

Run after a shipped workflow changes (tests/test_blueprints.py fails until then):
    bash scripts/setup_browser.sh && .venv-comfyui-0.33.0/bin/python scripts/make_blueprints.py
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness.blueprints import SUBGRAPHS, definition, flattened  # noqa: E402
from harness.browser import SETUP_HINT, find_chromium, launch, offline_page, open_comfyui  # noqa: E402
from harness.headless import ComfyServer, default_host  # noqa: E402
from harness.workflows import api_differences  # noqa: E402

WORKFLOWS = REPO / "shipped_workflows"
CATEGORY = "SSDiff"
"""definitions.subgraphs[0].category: frontend 1.49 lists the blueprints under "Subgraph
Blueprints/SSDiff" (1.32 under "Subgraph Blueprints")."""
OUTSIDE = ("LoadImage", "SaveImage", "PreviewImage", "MarkdownNote", "Note")
"""The shipped workflows' nodes left out of a blueprint: its input, outputs and notes."""
NODE_WIDTH = 420
"""The blueprint node's width: its widgets show their labels and the checkpoints' names whole."""
MIN_FRONTEND = (1, 49)
"""The frontend that can publish a blueprint under a given name (publishSubgraph(name)) and
writes promoted widgets as subgraph inputs: ComfyUI 0.33's 1.49.6."""


@dataclass(frozen=True)
class Blueprint:
    name: str
    """The file name, the node's title and its name in the node library."""
    workflow: str
    """The shipped UI workflow it is made from (shipped_workflows/<workflow>.json)."""
    description: str
    input_label: str
    outputs: tuple[tuple[int, str, str, int], ...]
    """(inner node id, its output's name, label, the SaveImage / PreviewImage it fed): the node's
    outputs, in this order."""
    promoted: tuple[tuple[str, tuple[tuple[int, str], ...]], ...]
    """(label, ((inner node id, widget name), ...)): each becomes one widget on the node."""
    search_aliases: tuple[str, ...] = ()


MODELS_NOTE = ("Checkpoints: see the README (models/ssdiff, models/facedetection, models/facerestore_models); "
               "scripts/download_models.py fetches them.")

BLUEPRINTS = (
    Blueprint(
        name="Restore old photo (SSDiff)",
        workflow="whole_photo_restoration",
        description=("An old photo in, the restored photo out (shipped_workflows/whole_photo_restoration.json as one "
                     "node): finds and aligns every face, restores each with SSDiff's two stages (scratch mask, "
                     "CodeFormer coarse restoration, parsing, pseudo-reference, selective guided sampling with "
                     "the same seed and steps), fills the scratches of the whole photo (Telea) and pastes the "
                     "faces back. " + MODELS_NOTE),
        input_label="photo",
        outputs=((14, "IMAGE", "restored photo", 15),),
        promoted=(
            ("seed", ((11, "seed"), (13, "seed"))),
            ("steps", ((11, "steps"), (13, "steps"))),
            ("CodeFormer fidelity", ((7, "fidelity"),)),
            ("faces", ((3, "selection"),)),
            ("face DDPM", ((10, "ckpt_name"),)),
            ("face detector", ((2, "model_name"),)),
            ("coarse restorer", ((6, "model_name"),)),
            ("scratch detector", ((4, "model_name"),)),
            ("face parser", ((8, "model_name"),)),
            ("colour transfer", ((12, "model_name"),)),
        ),
        search_aliases=("old photo restoration", "face restoration", "scratch removal", "SSDiff"),
    ),
    Blueprint(
        name="Restore aligned face (SSDiff)",
        workflow="aligned_face_restoration",
        description=("An aligned old face in (FFHQ alignment, e.g. from SSDiff Face Crop), the restored face and "
                     "stage 1's pseudo-reference out (shipped_workflows/aligned_face_restoration.json as one node): "
                     "scratch mask, CodeFormer coarse restoration, parsing, pseudo-reference and selective guided "
                     "sampling with the same seed and steps. " + MODELS_NOTE),
        input_label="aligned face",
        outputs=((11, "restored", "restored face", 12), (9, "pseudo_reference", "pseudo-reference", 13)),
        promoted=(
            ("seed", ((9, "seed"), (11, "seed"))),
            ("steps", ((9, "steps"), (11, "steps"))),
            ("CodeFormer fidelity", ((6, "fidelity"),)),
            ("face DDPM", ((1, "ckpt_name"),)),
            ("coarse restorer", ((5, "model_name"),)),
            ("scratch detector", ((3, "model_name"),)),
            ("face parser", ((7, "model_name"),)),
            ("colour transfer", ((10, "model_name"),)),
        ),
        search_aliases=("face restoration", "SSDiff"),
    ),
    Blueprint(
        name="Restore archive at restorer speed (SSDiff)",
        workflow="archive_restoration",
        description=("An old photo in, the restored photo and the training loss out "
                     "(shipped_workflows/archive_restoration.json as one node): the face DDPM makes pseudo-targets of the "
                     "photo's faces, CodeFormer is fine-tuned on them (saved into models/facerestore_models "
                     "under the save name, for the archive's other photos; empty: not saved) and restores every "
                     "face at its own speed. " + MODELS_NOTE),
        input_label="photo",
        outputs=((10, "IMAGE", "restored photo", 11), (8, "loss_plot", "loss plot", 12)),
        promoted=(
            ("pseudo-target steps", ((7, "steps"),)),
            ("fine-tune steps", ((8, "steps"),)),
            ("CodeFormer fidelity", ((5, "fidelity"), (9, "fidelity"))),
            ("save fine-tuned restorer as", ((8, "save_name"),)),
            ("face DDPM", ((6, "ckpt_name"),)),
            ("face detector", ((2, "model_name"),)),
            ("restorer", ((4, "model_name"),)),
        ),
        search_aliases=("archive restoration", "fine-tune CodeFormer", "SSDiff"),
    ),
)

BUILD_JS = r"""
(async (spec) => {
  const wait = ms => new Promise(resolve => setTimeout(resolve, ms));
  await app.loadGraphData(spec.workflow, true, true, spec.name);
  await wait(200);
  const graph = app.graph;
  const outside = graph.nodes.filter(node => spec.outside.includes(node.type));
  app.canvas.deselectAll();
  for (const node of graph.nodes) if (!outside.includes(node)) app.canvas.select(node);
  await app.extensionManager.command.execute('Comfy.Graph.ConvertToSubgraph');
  const node = [...app.canvas.selectedItems][0];
  if (!node?.isSubgraphNode?.()) throw new Error('the conversion gave no subgraph node');
  const subgraph = node.subgraph;

  // The conversion promotes some widgets by itself (the seeds): those inputs have no link outside.
  for (const input of [...subgraph.inputs]) {
    if (node.inputs[subgraph.inputs.indexOf(input)].link == null) subgraph.removeInput(input);
  }
  if (subgraph.inputs.length !== 1 || subgraph.outputs.length !== spec.outputs.length) {
    throw new Error(`inputs ${subgraph.inputs.map(i => i.name)}, outputs ${subgraph.outputs.map(o => o.name)}`);
  }
  subgraph.renameInput(subgraph.inputs[0], spec.input_label);
  // The outputs in the blueprint's order (the conversion's is the links'): each made again as an
  // inner output dragged onto the output node, and linked to the node it fed.
  for (const output of [...subgraph.outputs]) subgraph.removeOutput(output);
  for (const [id, outputName, label, fed] of spec.outputs) {
    const inner = subgraph.getNodeById(id);
    const slot = inner?.outputs.find(candidate => candidate.name === outputName);
    if (!slot) throw new Error(`node ${id} has no output ${outputName}`);
    subgraph.outputNode.emptySlot.connect(slot, inner);
    subgraph.renameOutput(subgraph.outputs.at(-1), label);
    node.connect(subgraph.outputs.length - 1, graph.getNodeById(fed), 0);
  }

  // Promotion, as a widget input dragged onto the input node: its empty slot makes a new input.
  for (const [label, targets] of spec.promoted) {
    let input = null;
    for (const [id, widgetName] of targets) {
      const inner = subgraph.getNodeById(id);
      const slot = inner?.inputs.find(candidate => candidate.name === widgetName && candidate.widget);
      if (!slot) throw new Error(`node ${id} has no widget input ${widgetName}`);
      if (input === null) {
        subgraph.inputNode.emptySlot.connect(slot, inner);
        input = subgraph.inputs.at(-1);
      } else {
        input.connect(slot, inner);
      }
      if (slot.link == null) throw new Error(`node ${id}.${widgetName} was not promoted`);
    }
    subgraph.renameInput(input, label);
  }
  await wait(200);
  const prompt = (await app.graphToPrompt()).output;

  for (const other of outside) graph.remove(other);
  subgraph.name = node.title = spec.name;
  subgraph.description = spec.description;
  subgraph.extra ??= {};
  // Frontend 1.32 shows extra.BlueprintDescription (1.49 too, before the subgraph's description).
  subgraph.extra.BlueprintDescription = spec.description;
  subgraph.extra.BlueprintSearchAliases = spec.search_aliases;
  node.pos = [0, 0];
  // Wide enough for the labels and file names (the conversion makes it as narrow as it can).
  node.setSize([Math.max(node.size[0], spec.width), node.size[1]]);
  app.canvas.deselectAll();
  app.canvas.select(node);
  const pinia = document.querySelector('#vue-app').__vue_app__.config.globalProperties.$pinia;
  await pinia._s.get('subgraph').publishSubgraph(spec.name);
  return JSON.stringify({prompt, widgets: node.widgets.map(widget => [widget.label ?? widget.name, widget.value])});
})
"""
"""BUILD_JS(spec): builds and publishes one blueprint in the open frontend; returns the prompt the
frontend would have queued for the workflow with the subgraph in it, and the node's widgets."""


def build(page, server: ComfyServer, blueprint: Blueprint) -> dict:
    """Builds `blueprint` in the open frontend; returns the blueprint file's content."""
    workflow = json.loads((WORKFLOWS / f"{blueprint.workflow}.json").read_text())
    spec = {"name": blueprint.name, "workflow": workflow, "outside": OUTSIDE, "description": blueprint.description,
            "input_label": blueprint.input_label, "outputs": blueprint.outputs,
            "promoted": blueprint.promoted, "search_aliases": blueprint.search_aliases, "width": NODE_WIDTH}
    report = json.loads(page.evaluate(BUILD_JS, spec))
    shipped = json.loads((WORKFLOWS / f"{blueprint.workflow}_api.json").read_text())
    problems = api_differences(flattened(report["prompt"]), shipped)
    if problems:
        raise SystemExit(f"{blueprint.name}: the frontend queues something else than shipped_workflows/"
                         f"{blueprint.workflow}_api.json:\n  " + "\n  ".join(problems))
    saved = requests.get(f"{server.url}/api/userdata/{quote('subgraphs/' + blueprint.name + '.json', safe='')}",
                         timeout=30)
    saved.raise_for_status()
    content = saved.json()
    subgraph = definition(content)
    if subgraph["name"] != blueprint.name:
        raise SystemExit(f"{blueprint.name}: the frontend published {subgraph['name']}")
    subgraph["category"] = CATEGORY
    print(f"{blueprint.name}: widgets {report['widgets']}")
    return with_stable_ids(content, blueprint.name)


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ID_NAMESPACE = uuid.UUID("6f1d3c52-4a3e-5b7e-9a57-55d1ff0c0de5")


def with_stable_ids(content: dict, name: str) -> dict:
    """The random UUIDs the frontend gives the subgraph and its inputs and outputs replaced by ones
    made from the blueprint's name (the n-th distinct one in the file: uuid5 of '<name>#n'), so that
    running the script again changes no file when nothing else changed."""
    text = json.dumps(content)
    found = list(dict.fromkeys(UUID.findall(text)))
    for index, random_id in enumerate(found):
        text = text.replace(random_id, str(uuid.uuid5(ID_NAMESPACE, f"{name}#{index}")))
    return json.loads(text)


def frontend_version(page) -> tuple[int, ...]:
    text = page.evaluate("window.__COMFYUI_FRONTEND_VERSION__ ?? '0.0'")
    return tuple(int(part) for part in text.split(".")[:2])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", default=[blueprint.name for blueprint in BLUEPRINTS],
                        help="blueprints to write (default: all)")
    parser.add_argument("--host", type=Path, default=default_host(),
                        help="the ComfyUI root (default: the host setup_host.sh built for this Python)")
    parser.add_argument("--output", type=Path, default=SUBGRAPHS, help="where the .json files go")
    options = parser.parse_args()
    chosen = [blueprint for blueprint in BLUEPRINTS if blueprint.name in options.names]
    if len(chosen) != len(set(options.names)):
        raise SystemExit(f"unknown blueprints: {sorted(set(options.names) - {b.name for b in BLUEPRINTS})}")
    if find_chromium() is None:
        raise SystemExit(f"no Chromium: {SETUP_HINT}")
    with tempfile.TemporaryDirectory(prefix="ssdiff-blueprints-") as folder:
        # Its own base folder: only this pack runs, and the published blueprints land in its user folder.
        base = Path(folder) / "base"
        (base / "custom_nodes").mkdir(parents=True)
        (base / "custom_nodes" / "ComfyUI-SSDiff").symlink_to(REPO, target_is_directory=True)
        with ComfyServer(options.host, Path(folder) / "server", extra_args=("--base-directory", str(base))) as server, \
                launch() as browser, offline_page(browser) as tab:
            tab.page.route("**/global_subgraphs", lambda route: route.fulfill(json={}))
            open_comfyui(tab.page, server.url)
            version = frontend_version(tab.page)
            if version < MIN_FRONTEND:
                raise SystemExit(f"frontend {version} cannot publish blueprints by name: run this with the "
                                 f"ComfyUI 0.33 host's Python (.venv-comfyui-0.33.0/bin/python)")
            contents = {blueprint.name: build(tab.page, server, blueprint) for blueprint in chosen}
    options.output.mkdir(parents=True, exist_ok=True)
    for name, content in contents.items():
        path = options.output / f"{name}.json"
        # ASCII: ComfyUI 0.3.75 reads the files in the locale's encoding.
        path.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
