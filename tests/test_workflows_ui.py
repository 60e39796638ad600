"""The shipped UI-format workflows against the running server's /object_info: every node type
exists, every widget value sits where the node declares that input (count, order, type, range,
combo option), every link joins an output and an input of its type, and ComfyUI's UI -> API
conversion (comfy-cli's `convert_ui_to_api`, fed the live /object_info) gives exactly the shipped
API workflow. A renamed, added or retyped input therefore fails here instead of silently shifting
the widget values of a saved workflow. The SamplerCustomAdvanced workflow is then queued, as
converted, with tiny networks."""
from __future__ import annotations

import copy
import json
import shutil

import pytest
import requests
from PIL import Image

from conftest import REPO
from harness.workflows import api_differences
from test_server import TEST_FILES

WORKFLOWS = REPO / "shipped_workflows"
EXAMPLES = REPO / "example_workflows"
SAMPLE = REPO / "assets" / "sample"
UI_WORKFLOWS = ("aligned_face_restoration", "whole_photo_restoration", "sampler_custom_advanced",
                "archive_restoration", "iterative_restoration", "family_album_restoration", "colourise_old_photo")
UI_ONLY_TYPES = {"Note", "MarkdownNote", "PrimitiveNode", "Reroute"}
"""Frontend-only nodes: not in /object_info, never in the API prompt."""
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
CONTROL_VALUES = {"fixed", "increment", "decrement", "randomize"}


@pytest.fixture(scope="module")
def object_info(server):
    # LoadImage lists the server's input folder: put the sample images there first.
    for image in SAMPLE.glob("*.png"):
        shutil.copy(image, server.input_dir / image.name)
    return requests.get(f"{server.url}/object_info", timeout=30).json()


def load_ui(name: str) -> dict:
    return json.loads((WORKFLOWS / f"{name}.json").read_text())


def load_api(name: str) -> dict:
    return json.loads((WORKFLOWS / f"{name}_api.json").read_text())


def with_test_files(workflow: dict) -> dict:
    """The loaders pointed at the tiny networks in the test models folder (UI format)."""
    workflow = copy.deepcopy(workflow)
    for node in workflow["nodes"]:
        if node["type"] in TEST_FILES:
            key, file_name = TEST_FILES[node["type"]]
            index = [entry["name"] for entry in node["inputs"] if "widget" in entry].index(key)
            node["widgets_values"][index] = file_name
    return workflow


def api_with_test_files(prompt: dict) -> dict:
    """The loaders pointed at the tiny networks in the test models folder (API format)."""
    prompt = copy.deepcopy(prompt)
    for node in prompt.values():
        if node["class_type"] in TEST_FILES:
            key, file_name = TEST_FILES[node["class_type"]]
            node["inputs"][key] = file_name
    return prompt


# -- the checker ---------------------------------------------------------------------------------

def declared_inputs(schema: dict) -> list[tuple[str, list, bool]]:
    """(name, spec, required) of a node's inputs in the order the frontend creates them."""
    sections = schema["input"]
    order = schema.get("input_order") or {section: list(sections.get(section, {})) for section in sections}
    return [(name, sections[section][name], section == "required")
            for section in ("required", "optional") for name in order.get(section, [])]


def input_type(spec: list) -> str:
    return "COMBO" if isinstance(spec[0], list) else spec[0]


def spec_options(spec: list) -> dict:
    return spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}


def is_widget(spec: list) -> bool:
    options = spec_options(spec)
    return input_type(spec) in WIDGET_TYPES and not options.get("forceInput") and not options.get("rawLink")


def widget_layout(schema: dict) -> list[tuple[str, str, list | None]]:
    """The slots of `widgets_values` the frontend writes: (input name, kind, spec); kind "value"
    for the input itself, "control" for a seed's control_after_generate companion, "upload" for
    the image-upload button that follows LoadImage's combo."""
    slots = []
    for name, spec, _ in declared_inputs(schema):
        if not is_widget(spec):
            continue
        options = spec_options(spec)
        slots.append((name, "value", spec))
        control = options.get("control_after_generate")
        if control or (control is None and input_type(spec) == "INT" and name in ("seed", "noise_seed")):
            slots.append((name, "control", None))
        if options.get("image_upload"):
            slots.append((name, "upload", None))
    return slots


def check_value(where: str, spec: list, value) -> list[str]:
    kind, options = input_type(spec), spec_options(spec)
    problems = []
    if kind == "COMBO":
        choices = spec[0] if isinstance(spec[0], list) else options.get("options", [])
        if value not in choices:
            problems.append(f"{where}: {value!r} is not one of the node's options {choices}")
    elif kind == "BOOLEAN":
        if not isinstance(value, bool):
            problems.append(f"{where}: {value!r} is not a BOOLEAN")
    elif kind == "STRING":
        if not isinstance(value, str):
            problems.append(f"{where}: {value!r} is not a STRING")
    elif kind in ("INT", "FLOAT"):
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not numeric or (kind == "INT" and value != int(value)):
            problems.append(f"{where}: {value!r} is not an {kind}")
        elif not options.get("min", value) <= value <= options.get("max", value):
            problems.append(f"{where}: {value!r} outside [{options.get('min')}, {options.get('max')}]")
    return problems


def ui_problems(workflow: dict, object_info: dict) -> list[str]:
    """Everything in a UI workflow that does not match what the nodes declare in /object_info."""
    problems = []
    nodes = {node["id"]: node for node in workflow["nodes"]}
    if len(nodes) != len(workflow["nodes"]):
        problems.append("node ids are not unique")
    links = {link[0]: link for link in workflow["links"]}
    if workflow["last_node_id"] < max(nodes) or (links and workflow["last_link_id"] < max(links)):
        problems.append("last_node_id / last_link_id below the ids in use")

    for node in workflow["nodes"]:
        where = f"node {node['id']} ({node['type']})"
        if node["type"] in UI_ONLY_TYPES:
            continue
        schema = object_info.get(node["type"])
        if schema is None:
            problems.append(f"{where}: no such node type on the server (missing node)")
            continue
        declared = {name: (spec, required) for name, spec, required in declared_inputs(schema)}
        # Widget values: one per widget slot, in the declared order, each valid for its input.
        layout = widget_layout(schema)
        values = node.get("widgets_values", [])
        if len(values) != len(layout):
            problems.append(f"{where}: {len(values)} widget values {values} for the {len(layout)} widget slots "
                            f"{[f'{name}:{kind}' for name, kind, _ in layout]} the node declares")
        else:
            for (name, kind, spec), value in zip(layout, values):
                if kind == "value":
                    problems += check_value(f"{where}.{name}", spec, value)
                elif kind == "control" and value not in CONTROL_VALUES:
                    problems.append(f"{where}.{name}: control_after_generate value {value!r}")
        # Input sockets: names and types as declared; required sockets connected.
        linked = set()
        for slot in node.get("inputs", []):
            name = slot["name"]
            if name not in declared:
                if not (name == "upload" and any(kind == "upload" for _, kind, _ in layout)):
                    problems.append(f"{where}: input {name!r} is not declared by the node")
                continue
            spec, _ = declared[name]
            if slot["type"] != input_type(spec):
                problems.append(f"{where}.{name}: socket type {slot['type']} but the node declares {input_type(spec)}")
            if bool(slot.get("widget")) != is_widget(spec):
                problems.append(f"{where}.{name}: widget socket mismatch")
            if slot.get("link") is not None:
                linked.add(name)
                if slot["link"] not in links:
                    problems.append(f"{where}.{name}: link {slot['link']} does not exist")
        for name, (spec, required) in declared.items():
            if required and not is_widget(spec) and name not in linked:
                problems.append(f"{where}: required input {name!r} ({input_type(spec)}) is not connected")
        # Outputs: the node's output types, in order. A newer ComfyUI may append outputs to a node
        # (SaveImage declares an IMAGE on 0.33, none on 0.3.75); links keep their slots, and the
        # frontend adds the new ones on load, so a saved list may end early, never differ.
        output_types = [output["type"] for output in node.get("outputs", [])]
        if output_types != schema["output"][:len(output_types)] or \
                (node["type"].startswith("SSDiff") and output_types != schema["output"]):
            problems.append(f"{where}: outputs {output_types} but the node declares {schema['output']}")

    for link_id, origin, origin_slot, target, target_slot, link_type in workflow["links"]:
        where = f"link {link_id}"
        if origin not in nodes or target not in nodes:
            problems.append(f"{where}: joins a node that does not exist")
            continue
        source, sink = nodes[origin], nodes[target]
        source_types = object_info.get(source["type"], {}).get("output", [])
        if origin_slot >= len(source_types) or source_types[origin_slot] != link_type:
            problems.append(f"{where}: {source['type']} output {origin_slot} is not {link_type}")
        elif origin_slot >= len(source.get("outputs", [])) or \
                link_id not in (source["outputs"][origin_slot].get("links") or []):
            problems.append(f"{where}: not listed by its origin's output")
        if target_slot >= len(sink.get("inputs", [])):
            problems.append(f"{where}: {sink['type']} has no input slot {target_slot}")
            continue
        slot = sink["inputs"][target_slot]
        declared = {name: spec for name, spec, _ in declared_inputs(object_info.get(sink["type"], {"input": {}}))}
        accepted = input_type(declared[slot["name"]]).split(",") if slot["name"] in declared else []
        if slot.get("link") != link_id or not ({link_type, "*"} & set(accepted)):
            problems.append(f"{where}: {link_type} into {sink['type']}.{slot['name']} ({accepted})")
    return problems


def convert(workflow: dict, object_info: dict) -> dict:
    """UI -> API by comfy-cli's converter (a port of the frontend's graphToPrompt), fed the live
    /object_info. It fills a missing widget with its default and skips a node it cannot convert:
    `ui_problems` is what refuses those."""
    try:
        from comfy_cli.workflow_to_api import convert_ui_to_api
    except ImportError as error:
        pytest.fail(f"comfy-cli's converter is missing ({error}): `pip install --no-deps comfy-cli pathspec` "
                    "(requirements-dev.txt; scripts/setup_host.sh installs it)", pytrace=False)
    return convert_ui_to_api(workflow, object_info)


# -- the tests -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", UI_WORKFLOWS)
def test_ui_workflow_matches_the_nodes_and_converts_to_the_shipped_api_workflow(object_info, name):
    workflow = load_ui(name)
    assert workflow["version"] == 0.4 and workflow["nodes"] and workflow["links"]
    problems = ui_problems(with_test_files(workflow), object_info)
    assert not problems, f"shipped_workflows/{name}.json:\n  " + "\n  ".join(problems)
    # The note that names the checkpoints.
    notes = [node for node in workflow["nodes"] if node["type"] in ("Note", "MarkdownNote")]
    assert notes and "models/ssdiff/" in notes[0]["widgets_values"][0]
    for node in workflow["nodes"]:
        if node["type"].startswith("SSDiff"):
            assert node["properties"]["cnr_id"] == "ssdiff", node
    problems = api_differences(convert(workflow, object_info), load_api(name))
    assert not problems, f"shipped_workflows/{name}.json -> API:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("name", UI_WORKFLOWS)
def test_template_browser_copy_is_the_ui_workflow(server, name):
    assert (EXAMPLES / f"{name}.json").read_bytes() == (WORKFLOWS / f"{name}.json").read_bytes()
    templates = requests.get(f"{server.url}/workflow_templates", timeout=30).json()
    assert name in templates.get("ComfyUI-SSDiff", []), templates


def test_a_renamed_or_added_input_is_caught(object_info):
    workflow = with_test_files(load_ui("sampler_custom_advanced"))
    assert not ui_problems(workflow, object_info)

    renamed = copy.deepcopy(object_info)
    inputs = renamed["SSDiffSelectiveSampler"]["input"]["required"]
    inputs["t_one"] = inputs.pop("t1")
    order = renamed["SSDiffSelectiveSampler"]["input_order"]["required"]
    order[order.index("t1")] = "t_one"
    assert any("'t1' is not declared" in problem for problem in ui_problems(workflow, renamed))

    added = copy.deepcopy(object_info)
    added["SSDiffPseudoReferenceSampler"]["input"]["required"]["new_weight"] = ["FLOAT", {"default": 1.0}]
    added["SSDiffPseudoReferenceSampler"]["input_order"]["required"].insert(1, "new_weight")
    assert any("widget values" in problem and "SSDiffPseudoReferenceSampler" in problem
               for problem in ui_problems(workflow, added))

    retyped = copy.deepcopy(object_info)
    retyped["SSDiffSelectiveSampler"]["input"]["optional"]["parsing"][0] = "MASK"
    assert any("parsing" in problem for problem in ui_problems(workflow, retyped))

    missing = copy.deepcopy(object_info)
    del missing["SSDiffColourTransferLoader"]
    assert any("missing node" in problem for problem in ui_problems(workflow, missing))

    # Outputs: a retyped one is caught, in our nodes and in core ones; one that a newer ComfyUI
    # appends to a core node (as 0.33 gave SaveImage an IMAGE) is not.
    retyped_output = copy.deepcopy(object_info)
    retyped_output["SSDiffSelectiveSampler"]["output"] = ["GUIDER"]
    assert any("outputs" in problem and "SSDiffSelectiveSampler" in problem
               for problem in ui_problems(workflow, retyped_output))
    retyped_core = copy.deepcopy(object_info)
    retyped_core["BasicScheduler"]["output"] = ["FLOAT"]
    assert any("outputs" in problem and "BasicScheduler" in problem for problem in ui_problems(workflow, retyped_core))
    appended = copy.deepcopy(object_info)
    appended["SaveImage"]["output"] = ["IMAGE", "MASK"]
    assert not ui_problems(workflow, appended)
    dropped = copy.deepcopy(workflow)
    sampler = next(node for node in dropped["nodes"] if node["type"] == "SSDiffSelectiveSampler")
    sampler["outputs"] = []
    assert any("outputs" in problem and "SSDiffSelectiveSampler" in problem for problem in ui_problems(dropped, object_info))


def test_converted_sampler_custom_advanced_workflow_runs(server, object_info):
    prompt = convert(with_test_files(load_ui("sampler_custom_advanced")), object_info)
    assert prompt["2"]["class_type"] == "LoadImage" and prompt["13"]["class_type"] == "BasicScheduler"
    # The sample face at 64 px (the tiny DDPM attends at 1/4 size: its cost grows as size^4 there)
    # and two guided steps per stage.
    with Image.open(SAMPLE / "ssdiff_sample_face.png") as face:
        face.resize((64, 64), Image.BICUBIC).save(server.input_dir / "ssdiff_test_face_64.png")
    prompt["2"]["inputs"]["image"] = "ssdiff_test_face_64.png"
    prompt["13"]["inputs"]["steps"] = 2
    images = server.output_images(server.run(prompt, timeout=300))
    assert sorted(path.name.split("_0")[0] for path in images) == ["pseudo_reference_custom", "restored_custom"]
    for path in images:
        with Image.open(path) as image:
            assert image.size == (64, 64)
            assert image.convert("L").getextrema()[1] > 0
