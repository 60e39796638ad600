"""The shipped UI workflows in the real ComfyUI frontend: headless Chromium (Debian's, driven by
Playwright, reaching nothing but this machine) opens each file from the `server` fixture's
frontend as a user's file would be opened, and every node must have a registered type, none may
be drawn in error (red), no "missing nodes" dialog or error overlay may open, the frontend must
keep every widget value and link, and the prompt the frontend would queue must be the shipped API
workflow. Each is also opened on a server with no checkpoint installed, as a new user's, and what
the frontend says is recorded. Screenshots (and that record) are kept in $SSDIFF_TEST_ARTIFACTS
(default: pytest's temporary folder). Needs scripts/setup_browser.sh."""
from __future__ import annotations

import copy
import io
import json
import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from PIL import Image

from playwright.sync_api import Browser, Page

from harness.browser import (SETUP_HINT, close_side_panel, find_chromium, inspect_workflow, launch,
                             missing_model_candidates, offline_page, open_comfyui, open_error_details, show_whole_graph)
from conftest import HOST, REPO
from harness.workflows import api_differences
from harness.headless import ComfyServer
from test_workflows_ui import (SAMPLE, UI_WORKFLOWS, api_with_test_files, input_type, load_api, load_ui,
                               spec_options, widget_layout, with_test_files)

FLAGS_MISSING_FILES_SINCE = (1, 49)
"""The frontend that outlines a loader red when the server lacks the file its widget names, and
says "N errors found": 1.49.6 (ComfyUI 0.33's) does, 1.32.9 (0.3.75's) does not and only
complains on Run; the versions between were not tried."""


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("SSDIFF_TEST_ARTIFACTS") or tmp_path_factory.mktemp("browser_artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder.resolve()


@pytest.fixture(scope="module")
def chromium():
    if find_chromium() is None:
        pytest.fail(f"no Chromium to open the ComfyUI frontend in: {SETUP_HINT}", pytrace=False)
    with launch() as browser:
        yield browser


def browser_on(chromium: Browser, server: ComfyServer):
    """A page showing `server`'s frontend, its LoadImage nodes given the sample photos."""
    for image in SAMPLE.glob("*.png"):  # LoadImage shows its image, as on a user's machine
        shutil.copy(image, server.input_dir / image.name)
    with offline_page(chromium) as tab:
        open_comfyui(tab.page, server.url)
        yield tab.page
        assert not tab.off_machine, f"the browser got responses from off this machine: {tab.off_machine}"


def test_the_browser_reaches_nothing_but_this_machine(chromium, server):
    with offline_page(chromium) as tab:
        tab.page.goto(f"{server.url}/system_stats")
        outcomes = tab.page.evaluate("""async () => {
          const get = url => fetch(url).then(response => `status ${response.status}`, error => `refused: ${error}`);
          const socket = url => new Promise(resolve => {
            const ws = new WebSocket(url);
            ws.onopen = () => resolve('open');
            ws.onerror = () => resolve('refused');
          });
          return [await get('/system_stats'), await get('http://example.com/'), await get('http://1.1.1.1/'),
                  await socket('ws://example.com/')];
        }""")
    assert outcomes[0] == "status 200", outcomes
    assert all(outcome.startswith("refused") for outcome in outcomes[1:]), outcomes
    assert tab.refused == ["http://example.com/", "http://1.1.1.1/"]
    assert not tab.off_machine


@pytest.fixture(scope="module")
def frontend(chromium, server, artifacts, request):
    yield from browser_on(chromium, server)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"browser screenshots: {artifacts}")


@pytest.fixture(scope="module")
def bare_server(tmp_path_factory):
    """ComfyUI as a new user has it: the pack in custom_nodes/, no model file anywhere."""
    base = tmp_path_factory.mktemp("new_user_comfyui")
    (base / "custom_nodes").mkdir()
    (base / "custom_nodes" / "ComfyUI-SSDiff").symlink_to(REPO, target_is_directory=True)
    with ComfyServer(HOST, base, extra_args=("--base-directory", str(base))) as running:
        yield running


@pytest.fixture(scope="module")
def bare_frontend(chromium, bare_server):
    yield from browser_on(chromium, bare_server)


def open_and_screenshot(frontend: Page, artifacts: Path, workflow: dict, name: str) -> dict:
    report = inspect_workflow(frontend, workflow, f"{name}.json")
    show_whole_graph(frontend)
    path = artifacts / f"{name}.png"
    frontend.screenshot(path=path)
    print(f"\nscreenshot of {name}: {path}")
    return report


def widget_values(nodes: list[dict]) -> dict:
    return {node["id"]: node.get("widgets_values") or [] for node in nodes}


def flags_missing_files(report: dict) -> bool:
    version = tuple(int(part) for part in (report["frontend_version"] or "0.0").split(".")[:2])
    return version >= FLAGS_MISSING_FILES_SINCE


@pytest.mark.parametrize("name", UI_WORKFLOWS)
def test_workflow_opens_in_the_frontend_with_no_missing_or_red_node(frontend, artifacts, name):
    # The loaders name files the test server has (the tiny networks), as a user's would.
    workflow = with_test_files(load_ui(name))
    report = open_and_screenshot(frontend, artifacts, workflow, name)
    assert report["types"] == [[str(node["id"]), node["type"]] for node in workflow["nodes"]]
    assert not report["unregistered"], f"node types the frontend does not know: {report['unregistered']}"
    assert not report["with_errors"], f"nodes drawn in error: {report['with_errors']}"
    assert not report["dialogs"], f"the frontend opened a dialog: {report['dialogs']}"
    assert not report["toasts"], f"the frontend showed a message: {report['toasts']}"
    assert not report["overlays"], f"the frontend reported errors: {report['overlays']}"
    saved = report["serialized"]
    assert widget_values(saved["nodes"]) == widget_values(workflow["nodes"])
    assert saved["links"] == workflow["links"]
    problems = api_differences(report["prompt"], api_with_test_files(load_api(name)))
    assert not problems, f"the frontend queues something else than shipped_workflows/{name}_api.json:\n  " + \
        "\n  ".join(problems)


def test_the_checks_see_a_missing_node_and_a_shifted_widget(frontend, artifacts):
    workflow = with_test_files(load_ui("sampler_custom_advanced"))
    missing = copy.deepcopy(workflow)
    missing["nodes"][0]["type"] = "SSDiffNoSuchNode"
    report = open_and_screenshot(frontend, artifacts, missing, "control_missing_node")
    assert report["unregistered"] == [f"{missing['nodes'][0]['id']} SSDiffNoSuchNode"]
    # 1.32 opens a "missing nodes" dialog, 1.49 an overlay "Missing node: SSDiffNoSuchNode".
    said = [text.lower() for text in report["dialogs"] + report["overlays"]]
    assert report["with_errors"] and any("missing node" in text for text in said), report

    # A widget value dropped (as an input added to a node would shift them): the frontend opens
    # it without complaint, so only the prompt comparison sees it.
    shifted = copy.deepcopy(workflow)
    sampler = next(node for node in shifted["nodes"] if node["type"] == "SSDiffSelectiveSampler")
    del sampler["widgets_values"][0]
    report = open_and_screenshot(frontend, artifacts, shifted, "control_shifted_widgets")
    assert not report["unregistered"] and not report["dialogs"]
    assert any("SSDiffSelectiveSampler" in problem for problem in
               api_differences(report["prompt"], api_with_test_files(load_api("sampler_custom_advanced"))))


def missing_files(workflow: dict, object_info: dict) -> dict[str, str]:
    """'<node id> <type>' -> the file each node's widgets name that the server does not list."""
    missing = {}
    for node in workflow["nodes"]:
        schema = object_info.get(node["type"])
        if schema is None:
            continue
        for (_, kind, spec), value in zip(widget_layout(schema), node.get("widgets_values", [])):
            if kind == "value" and input_type(spec) == "COMBO":
                choices = spec[0] if isinstance(spec[0], list) else spec_options(spec).get("options", [])
                if value not in choices:
                    missing[f"{node['id']} {node['type']}"] = value
    return missing


@pytest.mark.parametrize("name", UI_WORKFLOWS)
def test_workflow_opened_with_no_checkpoints_installed_names_each_missing_file(bare_server, bare_frontend,
                                                                                artifacts, name):
    workflow = load_ui(name)
    object_info = requests.get(f"{bare_server.url}/object_info", timeout=30).json()
    missing = missing_files(workflow, object_info)
    loaders = [f"{node['id']} {node['type']}" for node in workflow["nodes"] if node["type"].endswith("Loader")]
    assert sorted(missing) == sorted(loaders), "every loader names a checkpoint a new user does not have"

    report = open_and_screenshot(bare_frontend, artifacts, workflow, f"{name}_no_checkpoints")
    assert not report["unregistered"]
    links = {(link["name"], link["directory"], link["url"]) for node in workflow["nodes"]
             for link in node["properties"].get("models", [])}
    assert {name for name, _, _ in links} == set(missing.values()), "every missing file has its model link"
    candidates = missing_model_candidates(bare_frontend)
    details = open_error_details(bare_frontend)
    if details is not None:
        bare_frontend.screenshot(path=artifacts / f"{name}_no_checkpoints_details.png")
        close_side_panel(bare_frontend)
    record = {"frontend_version": report["frontend_version"], "missing_files": missing,
              "drawn_in_error": report["with_errors"], "overlays": report["overlays"], "dialogs": report["dialogs"],
              "error_details": details, "missing_model_candidates": candidates}
    (artifacts / f"{name}_no_checkpoints.json").write_text(json.dumps(record, indent=2) + "\n")

    if flags_missing_files(report):
        assert not report["dialogs"]
        assert sorted(report["with_errors"]) == sorted(missing), "the frontend outlines every loader and no other"
        assert report["overlays"] == [f"{len(missing)} errors found Resolve them before running the workflow. "
                                      "View details"]
        assert set(details) == {"missing-model"}, details
        for file_name, folder, _ in links:
            assert file_name in details["missing-model"], f"{file_name} is not in the missing-models panel"
            assert folder in details["missing-model"], f"{folder} is not in the missing-models panel"
        listed = {(entry["name"], entry["directory"], entry["url"]) for entry in candidates if entry["missing"]}
        assert listed == links, "the panel's files, folders and links are the workflow's model links"
    else:  # 1.32 opens its Missing Models dialog from the model links on load
        assert not report["with_errors"] and not report["overlays"] and details is None, record
        assert len(report["dialogs"]) == 1 and report["dialogs"][0].startswith("Missing Models"), record
        for file_name, folder, _ in links:
            assert f"{folder} / {file_name}" in report["dialogs"][0], f"{file_name} is not in the dialog"


PACK_FOLDER = "ComfyUI-SSDiff"
"""The pack's folder in custom_nodes/: the template browser's name for it."""

OPEN_TEMPLATES_JS = "app.extensionManager.command.execute('Comfy.BrowseTemplates')"

THUMBNAILS_SHOWN_JS = r"""
(names) => names.every(name => {
  // Each card (1.32 and 1.49: data-testid template-workflow-<name>) shows its thumbnail, the .jpg
  // or, where that fails to load, the frontend's default-template.png; cards out of view load lazily.
  const card = document.querySelector(`[data-testid="template-workflow-${CSS.escape(name)}"]`);
  const image = card?.querySelector('img');
  if (!image || !image.complete || !image.naturalWidth) {
    card?.scrollIntoView({block: 'center'});
    return false;
  }
  return true;
})
"""

THUMBNAIL_SIZES_JS = r"""
(names) => Object.fromEntries(names.map(name => {
  const image = document.querySelector(`[data-testid="template-workflow-${CSS.escape(name)}"] img`);
  return [name, [image.naturalWidth, image.naturalHeight, image.alt]];
}))
"""


def test_the_template_browser_lists_every_shipped_workflow_with_its_thumbnail(chromium, bare_server, artifacts):
    """Workflow -> Browse Templates -> ComfyUI-SSDiff, as a new user opens it: every workflow of
    example_workflows/ has its card (and nothing else: no API workflow, nothing twice), showing its own thumbnail as the server sends it (the .jpg,
    not the frontend's stand-in for a missing one). tests/test_thumbnails.py checks what the
    thumbnails show."""
    examples = REPO / "example_workflows"
    shipped = sorted(path.stem for path in examples.glob("*.json"))
    listed = requests.get(f"{bare_server.url}/workflow_templates", timeout=30).json().get(PACK_FOLDER, [])
    assert sorted(listed) == shipped, (f"not listed: {sorted(set(shipped) - set(listed))}; listed but not a template "
                                       f"(a folder ComfyUI also reads, such as workflows/?): "
                                       f"{sorted(set(listed) - set(shipped))}; listed twice: "
                                       f"{sorted({name for name in listed if listed.count(name) > 1})}")
    sizes = {}
    for name in shipped:
        served = requests.get(f"{bare_server.url}/api/workflow_templates/{PACK_FOLDER}/{name}.jpg", timeout=30)
        assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg", (name, served)
        assert served.content == (examples / f"{name}.jpg").read_bytes()
        with Image.open(io.BytesIO(served.content)) as image:
            sizes[name] = [image.width, image.height, name]
        assert min(sizes[name][:2]) > 0

    with offline_page(chromium, 1600, 2400) as tab:
        page = tab.page
        responses: dict[str, int] = {}
        page.on("response", lambda response: responses.__setitem__(urlsplit(response.url).path, response.status))
        open_comfyui(page, bare_server.url)
        page.evaluate(OPEN_TEMPLATES_JS)
        page.get_by_text(PACK_FOLDER, exact=True).first.click()
        page.wait_for_function(THUMBNAILS_SHOWN_JS, arg=shipped, timeout=60_000, polling=250)
        shown = page.evaluate(THUMBNAIL_SIZES_JS, shipped)
        page.screenshot(path=artifacts / "template_browser.png")
        assert not tab.off_machine
    (artifacts / "template_browser.json").write_text(json.dumps(
        {"listed": listed, "shipped": shipped, "listed_not_shipped": sorted(set(listed) - set(shipped)),
         "thumbnails_shown": shown}, indent=2) + "\n")
    for name in shipped:
        assert responses.get(f"/api/workflow_templates/{PACK_FOLDER}/{name}.jpg") == 200, (name, responses)
    assert shown == sizes, "a card shows another image than its thumbnail (the frontend's default-template.png?)"
