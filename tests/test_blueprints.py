"""The pack's subgraph blueprints (subgraphs/*.json, made by scripts/make_blueprints.py from the
shipped UI workflows in the real frontend): each is still the shipped workflow's graph, valid
against the nodes' current inputs; the server lists and serves them (GET /global_subgraphs); and in
each frontend (1.32 of ComfyUI 0.3.75, 1.49 of 0.33: both load blueprints from custom_nodes/*/
subgraphs) each is listed in the node library, added to an empty graph as the library adds it,
given a LoadImage of the bundled sample and a SaveImage (or PreviewImage) per output, set through
its promoted widgets, converted by the frontend's own app.graphToPrompt() and run on the test
server with the tiny networks, 2 steps and (the whole photo's blueprints) 64 px faces, writing its images.
Needs scripts/setup_browser.sh."""
from __future__ import annotations

import copy
import json

import pytest
import requests
from PIL import Image

from conftest import REPO
from harness.blueprints import (INPUT_NODE, OUTPUT_NODE, blueprint_names, definition, flattened, load_blueprint,
                                promoted_inputs)
from harness.browser import show_whole_graph
from harness.workflows import api_differences
from test_browser import artifacts, browser_on, chromium  # noqa: F401  (the fixtures)
from test_workflows_ui import (api_with_test_files, load_api, load_ui, object_info, ui_problems,  # noqa: F401
                               widget_layout, with_test_files)

from comfyui_ssdiff.models import mtcnn

PACK_FOLDER = "ComfyUI-SSDiff"
CATEGORY = "SSDiff"
OUTSIDE = ("LoadImage", "SaveImage", "PreviewImage", "MarkdownNote", "Note")
"""The nodes of a shipped workflow that a blueprint leaves out (scripts/make_blueprints.py)."""

SOURCES = {"Restore old photo (SSDiff)": "whole_photo_restoration",
           "Restore aligned face (SSDiff)": "aligned_face_restoration",
           "Restore archive at restorer speed (SSDiff)": "archive_restoration"}
"""Each blueprint and the shipped workflow it is made from (issue 32, point 2)."""

OLD_PHOTO = "ssdiff_sample_old_photo.png"
"""A real face (MTCNN finds it; the tiny random RetinaFace finds none)."""
RUNS = {
    "Restore old photo (SSDiff)": (OLD_PHOTO, {"steps": 2, "face DDPM": "tiny_face_ddpm.pth",
                                               "face detector": mtcnn.CHOICE},
                                   # The random scratch detector marks every pixel: nothing to fill from;
                                   # 64 px faces, as the GPU check's small run (the main job's test runs 512).
                                   ((16, "threshold", 1.0), (3, "crop_size", 64))),
    "Restore aligned face (SSDiff)": ("ssdiff_sample_face.png", {"steps": 2, "face DDPM": "tiny_face_ddpm.pth"}, ()),
    "Restore archive at restorer speed (SSDiff)": (OLD_PHOTO, {
        "pseudo-target steps": 2, "fine-tune steps": 2, "face DDPM": "tiny_face_ddpm.pth",
        "face detector": mtcnn.CHOICE, "save fine-tuned restorer as": ""}, ((3, "crop_size", 64),)),
}
"""Per blueprint: the sample photo it is given, what is set through its promoted widgets (by
label) for the run on the tiny networks (the other loaders name files the test models folder has;
an empty save name keeps the fine-tuned restorer out of the models folders), and the widgets set
inside the subgraph, as a user who opens it would (node id, widget, value)."""
SEARCH_LENGTH = 30
"""The node search box (both frontends) finds nothing for a query longer than about 34
characters ("Restore archive at restorer speed (SSDiff)" itself): the test types the name's first
words up to this length."""


def test_the_blueprints_are_the_ones_of_issue_32():
    assert blueprint_names() == sorted(SOURCES)


# -- the files, against the shipped workflows and the nodes' current inputs ------------------------

def as_workflow(blueprint: dict, object_info: dict) -> tuple[dict, dict]:
    """The blueprint's subgraph as a UI workflow that tests/test_workflows_ui.py's checker reads:
    its input and output nodes (-10, -20) stand-in nodes declared in a copy of `object_info`."""
    subgraph = definition(blueprint)
    links = {link["id"]: link for link in subgraph["links"]}
    inputs_node = {"id": INPUT_NODE, "type": "SSDiffTestSubgraphInputs", "inputs": [], "widgets_values": [],
                   "outputs": [{"name": entry["name"], "type": entry["type"], "links": entry["linkIds"]}
                               for entry in subgraph["inputs"]]}
    outputs_node = {"id": OUTPUT_NODE, "type": "SSDiffTestSubgraphOutputs", "outputs": [], "widgets_values": [],
                    "inputs": [{"name": entry["name"], "type": entry["type"], "link": entry["linkIds"][0]}
                               for entry in subgraph["outputs"]]}
    declared = copy.deepcopy(object_info)
    declared["SSDiffTestSubgraphInputs"] = {"input": {"required": {}},
                                            "output": [entry["type"] for entry in subgraph["inputs"]]}
    declared["SSDiffTestSubgraphOutputs"] = {"input": {"required": {e["name"]: [e["type"], {"forceInput": True}]
                                                                    for e in subgraph["outputs"]}}, "output": []}
    workflow = {"last_node_id": subgraph["state"]["lastNodeId"], "last_link_id": subgraph["state"]["lastLinkId"],
                "nodes": [inputs_node, *subgraph["nodes"], outputs_node],
                "links": [[link["id"], link["origin_id"], link["origin_slot"], link["target_id"], link["target_slot"],
                           link["type"]] for link in links.values()]}
    return with_test_files(workflow), declared


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_blueprint_is_one_subgraph_node_as_the_frontend_publishes_it(name):
    blueprint = load_blueprint(name)
    (node,) = blueprint["nodes"]
    subgraph = definition(blueprint)
    assert blueprint["version"] == 0.4 and blueprint["links"] == [] and len(blueprint["definitions"]["subgraphs"]) == 1
    assert node["type"] == subgraph["id"] and node["title"] == subgraph["name"] == name
    assert subgraph["category"] == CATEGORY
    assert subgraph["description"] and blueprint["extra"]["BlueprintDescription"] == subgraph["description"]
    assert [entry["type"] for entry in subgraph["inputs"][:1]] == ["IMAGE"]
    assert {entry["type"] for entry in subgraph["outputs"]} == {"IMAGE"}
    # The outer node's slots are the subgraph's, each promoted widget with the inner widget's value.
    assert [(slot["name"], slot["type"], slot.get("label")) for slot in node["inputs"]] == \
        [(entry["name"], entry["type"], entry.get("label")) for entry in subgraph["inputs"]]
    assert [(slot["name"], slot["type"], slot.get("label")) for slot in node["outputs"]] == \
        [(entry["name"], entry["type"], entry.get("label")) for entry in subgraph["outputs"]]
    assert len(promoted_inputs(blueprint)) == len(subgraph["inputs"]) - 1 == len(node["widgets_values"])


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_blueprint_is_the_shipped_workflow_without_its_load_and_save_nodes(name):
    """Node for node (type, title, widget values) and link for link, the blueprint computes what
    shipped_workflows/<source>.json computes: run scripts/make_blueprints.py after a workflow changes."""
    source = load_ui(SOURCES[name])
    subgraph = definition(load_blueprint(name))
    kept = {node["id"]: node for node in source["nodes"] if node["type"] not in OUTSIDE}
    inner = {node["id"]: node for node in subgraph["nodes"]}
    hint = "run scripts/make_blueprints.py"
    assert sorted(inner) == sorted(kept), hint
    for node_id, node in kept.items():
        assert (inner[node_id]["type"], inner[node_id].get("title")) == (node["type"], node.get("title")), hint
        assert inner[node_id]["widgets_values"] == node["widgets_values"], f"node {node_id} ({node['type']}): {hint}"
    def joined(link: list) -> tuple:
        return tuple(link[1:])

    source_nodes = {node["id"]: node for node in source["nodes"]}
    within = {joined(link) for link in source["links"] if link[1] in kept and link[3] in kept}
    links = [(link["origin_id"], link["origin_slot"], link["target_id"], link["target_slot"], link["type"])
             for link in subgraph["links"]]
    promoted_links = {link_id for entry in subgraph["inputs"][1:] for link_id in entry["linkIds"]}
    assert {link for link in links if INPUT_NODE not in link[::2] and OUTPUT_NODE not in link[::2]} == within, hint
    # The photo goes where the LoadImage's went, the outputs come from what fed the SaveImage and
    # PreviewImage nodes.
    image_in = {(link["target_id"], link["target_slot"]) for link in subgraph["links"]
                if link["origin_id"] == INPUT_NODE and link["id"] not in promoted_links}
    loaded = {(link[3], link[4]) for link in source["links"] if source_nodes[link[1]]["type"] == "LoadImage"}
    assert image_in == loaded, hint
    given_out = {(link["origin_id"], link["origin_slot"]) for link in subgraph["links"]
                 if link["target_id"] == OUTPUT_NODE}
    saved = {(link[1], link[2]) for link in source["links"]
             if source_nodes[link[3]]["type"] in ("SaveImage", "PreviewImage")}
    assert given_out == saved, hint


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_blueprint_matches_the_nodes_current_inputs(object_info, name):
    """Every inner node's type exists on the server, its widget values fit the widgets it declares
    now, its sockets and links match its inputs and outputs (the checker of the shipped UI
    workflows, tests/test_workflows_ui.py, with the loaders pointed at the test server's files)."""
    blueprint = load_blueprint(name)
    workflow, declared = as_workflow(blueprint, object_info)
    problems = ui_problems(workflow, declared)
    assert not problems, f"subgraphs/{name}.json:\n  " + "\n  ".join(problems)
    # Each promoted widget's value on the outer node is the value of the inner widgets it sets.
    inner = {node["id"]: node for node in definition(blueprint)["nodes"]}
    for (label, targets), value in zip(promoted_inputs(blueprint).items(), blueprint["nodes"][0]["widgets_values"]):
        for node_id, widget in targets:
            layout = [(input_name, kind) for input_name, kind, _ in widget_layout(declared[inner[node_id]["type"]])]
            assert inner[node_id]["widgets_values"][layout.index((widget, "value"))] == value, (label, node_id)


def test_the_checks_see_a_shifted_widget_and_an_unknown_node(object_info):
    blueprint = load_blueprint("Restore aligned face (SSDiff)")
    shifted = copy.deepcopy(blueprint)
    sampler = next(node for node in definition(shifted)["nodes"] if node["type"] == "SSDiffSampler")
    del sampler["widgets_values"][0]
    assert any("SSDiffSampler" in problem for problem in ui_problems(*as_workflow(shifted, object_info)))
    unknown = copy.deepcopy(blueprint)
    definition(unknown)["nodes"][0]["type"] = "SSDiffNoSuchNode"
    assert any("missing node" in problem for problem in ui_problems(*as_workflow(unknown, object_info)))


# -- the server ----------------------------------------------------------------------------------

def test_the_server_lists_and_serves_every_blueprint(server):
    listed = requests.get(f"{server.url}/global_subgraphs", timeout=30).json()
    ours = {entry["name"]: entry_id for entry_id, entry in listed.items()
            if entry["info"]["node_pack"] == f"custom_nodes.{PACK_FOLDER}"}
    assert sorted(ours) == blueprint_names()
    for name, entry_id in ours.items():
        assert listed[entry_id]["source"] == "custom_node"
        served = requests.get(f"{server.url}/global_subgraphs/{entry_id}", timeout=30).json()
        assert json.loads(served["data"]) == load_blueprint(name)


# -- the frontends -------------------------------------------------------------------------------

ADD_BLUEPRINT_JS = r"""
(async (spec) => {
  const pinia = document.querySelector('#vue-app').__vue_app__.config.globalProperties.$pinia;
  const subgraphs = pinia._s.get('subgraph'), nodeDefs = pinia._s.get('nodeDef');
  const version = window.__COMFYUI_FRONTEND_VERSION__ ?? null;
  if (!subgraphs?.getBlueprint) return JSON.stringify({version, unsupported: true});
  // The frontend loads the installed blueprints as it starts (GET /global_subgraphs).
  const find = () => subgraphs.subgraphBlueprints.find(def => def.display_name === spec.name);
  for (let tries = 0; tries < 600 && !find(); tries++) await new Promise(resolve => setTimeout(resolve, 100));
  const def = find();
  if (!def) return JSON.stringify({version, listed: subgraphs.subgraphBlueprints.map(def => def.display_name)});
  const library = nodeDefs.visibleNodeDefs.some(other => other.name === def.name);
  const searched = nodeDefs.nodeSearchService.searchNode(spec.query).slice(0, 3).map(other => other.display_name);

  // An empty graph, and the blueprint added as the node library adds one (addNodeOnGraph).
  app.graph.clear();
  const blueprint = subgraphs.getBlueprint(def.name);
  const added = app.canvas._deserializeItems({nodes: blueprint.nodes, subgraphs: blueprint.definitions?.subgraphs},
                                             {position: [500, 200]});
  const node = added.nodes.values().next().value;
  const load = LiteGraph.createNode('LoadImage');
  app.graph.add(load);
  load.pos = [100, 200];
  load.title = spec.load_title;
  load.widgets.find(widget => widget.name === 'image').value = spec.image;
  load.connect(0, node, 0);
  const sinks = spec.sinks.map(([type, title, prefix], index) => {
    const sink = LiteGraph.createNode(type);
    app.graph.add(sink);
    sink.pos = [1000, 200 + 300 * index];
    sink.title = title;
    if (prefix !== null) sink.widgets.find(widget => widget.name === 'filename_prefix').value = prefix;
    node.connect(index, sink, 0);
    return sink;
  });
  const widgets = Object.fromEntries(node.widgets.map(widget => [widget.label ?? widget.name, widget.value]));
  for (const [label, value] of spec.settings) {
    const widget = node.widgets.find(candidate => (candidate.label ?? candidate.name) === label);
    if (!widget) throw new Error(`no promoted widget ${label}: ${Object.keys(widgets)}`);
    widget.value = value;
  }
  for (const [id, name, value] of spec.inner) {
    node.subgraph.getNodeById(id).widgets.find(widget => widget.name === name).value = value;
  }
  app.canvas.deselectAll();
  app.canvas.setDirty(true, true);
  const registered = LiteGraph.registered_node_types;
  return JSON.stringify({
    version, category: def.category, description: def.description, library, searched,
    title: node.title, widgets,
    inputs: node.inputs.map(slot => slot.label ?? slot.name),
    outputs: node.outputs.map(slot => slot.label ?? slot.name),
    unregistered: node.subgraph.nodes.filter(inner => !registered[inner.type]).map(inner => inner.type),
    with_errors: [node, ...node.subgraph.nodes].filter(each => each.has_errors).map(each => each.type),
    load: String(load.id), sinks: sinks.map(sink => String(sink.id)),
    prompt: (await app.graphToPrompt()).output,
  });
})
"""
"""ADD_BLUEPRINT_JS(spec): in the open frontend, finds the blueprint `spec.name` among the node
definitions, adds it to an emptied graph, a LoadImage before it and `spec.sinks` after it, sets
its promoted widgets (`spec.settings`, by label), and returns what the frontend shows and the
prompt it would queue (ids as strings)."""


def query(name: str) -> str:
    """What a user types into the node search box: the name's first words, SEARCH_LENGTH
    characters at most."""
    words = name.split()
    while len(" ".join(words)) > SEARCH_LENGTH:
        words.pop()
    return " ".join(words)


@pytest.fixture(scope="module")
def blueprint_frontend(chromium, server):  # noqa: F811
    yield from browser_on(chromium, server)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_blueprint_added_in_the_frontend_runs_on_the_sample(blueprint_frontend, server, artifacts, name):  # noqa: F811
    photo, settings, inner = RUNS[name]
    blueprint = load_blueprint(name)
    subgraph = definition(blueprint)
    shipped = api_with_test_files(load_api(SOURCES[name]))
    (load_id,) = [node_id for node_id, node in shipped.items() if node["class_type"] == "LoadImage"]
    # What each output fed in the shipped workflow: a SaveImage or PreviewImage of that workflow.
    links = {link["id"]: link for link in subgraph["links"]}
    origins = [(links[entry["linkIds"][0]]["origin_id"], links[entry["linkIds"][0]]["origin_slot"])
               for entry in subgraph["outputs"]]
    sink_ids = [next(node_id for node_id, node in shipped.items()
                     if node["inputs"].get("images") == [str(origin), slot]) for origin, slot in origins]
    prefixes = [f"blueprint/{SOURCES[name]}_{index}" if shipped[sink_id]["class_type"] == "SaveImage" else None
                for index, sink_id in enumerate(sink_ids)]
    spec = {"name": name, "image": photo, "load_title": shipped[load_id]["_meta"]["title"],
            "sinks": [[shipped[sink_id]["class_type"], shipped[sink_id]["_meta"]["title"], prefix]
                      for sink_id, prefix in zip(sink_ids, prefixes)],
            "settings": list(settings.items()), "inner": inner, "query": query(name)}
    report = json.loads(blueprint_frontend.evaluate(ADD_BLUEPRINT_JS, spec))
    version = report["version"]
    if report.get("unsupported"):
        pytest.skip(f"frontend {version} has no subgraph blueprints")
    assert "prompt" in report, f"frontend {version} does not list {name}: {report.get('listed')}"
    show_whole_graph(blueprint_frontend)
    screenshot = artifacts / f"blueprint_{SOURCES[name]}_{version}.png"
    blueprint_frontend.screenshot(path=screenshot)
    print(f"\nfrontend {version}: {name} in {report['category']!r}, widgets {report['widgets']}; {screenshot}")
    assert report["library"] and report["searched"][0] == name, (query(name), report["searched"])
    assert report["category"] in ("Subgraph Blueprints", f"Subgraph Blueprints/{CATEGORY}")  # 1.32, 1.49
    assert report["description"] == subgraph["description"] and report["title"] == name
    assert not report["unregistered"] and not report["with_errors"], report
    assert report["inputs"][0] == subgraph["inputs"][0]["label"]
    assert report["outputs"] == [entry["label"] for entry in subgraph["outputs"]]
    assert list(report["widgets"]) == list(promoted_inputs(blueprint)), "the promoted widgets, in order, by label"

    # The frontend's prompt is the shipped workflow's, set as the promoted widgets say.
    expected = copy.deepcopy(shipped)
    expected[load_id]["inputs"]["image"] = photo
    for sink_id, prefix in zip(sink_ids, prefixes):
        if prefix is not None:
            expected[sink_id]["inputs"]["filename_prefix"] = prefix
    for label, value in settings.items():
        for node_id, widget in promoted_inputs(blueprint)[label]:
            expected[str(node_id)]["inputs"][widget] = value
    for node_id, widget, value in inner:
        expected[str(node_id)]["inputs"][widget] = value
    for node_id in [node_id for node_id, node in expected.items() if node["class_type"] == "PreviewImage"]:
        if node_id not in sink_ids:
            del expected[node_id]
    prompt = report["prompt"]
    outer = {report["load"]: load_id, **dict(zip(report["sinks"], sink_ids))}
    problems = api_differences(flattened(prompt, outer), expected)
    assert not problems, f"frontend {version} queues something else:\n  " + "\n  ".join(problems)

    entry = server.run(prompt, timeout=900)
    images = server.output_images(entry)
    written = sorted(path.relative_to(server.output_dir).as_posix().rsplit("_", 2)[0] for path in images)
    assert written == sorted(prefix for prefix in prefixes if prefix), written
    with Image.open(REPO / "assets" / "sample" / photo) as source:
        size = source.size
    for path in images:
        with Image.open(path) as image:
            assert image.convert("L").getextrema()[1] > 0, path
            if path.name.startswith(f"{SOURCES[name]}_0"):  # the restored photo or face
                assert image.size == size, (path, image.size)
