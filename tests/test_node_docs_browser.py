"""Every node's help page (web/docs/<node_id>.md) opens in the node docs panel of the real ComfyUI
frontend, as a user opens it: headless Chromium (Debian's, driven by Playwright, reaching nothing
but this machine) shows a server's frontend, each SSDiff node (every /object_info entry whose
category starts with "SSDiff") is put on the canvas alone, clicked, and the selection toolbox's
info button ("Node Info", data-testid info-button) is pressed. Both frontends then render the
page the pack serves, through their node help service (GET /extensions/<pack folder>/docs/<node
id>/<locale>.md, else /extensions/<pack folder>/docs/<node id>.md, rendered as Markdown):

- frontend 1.32.9 (ComfyUI 0.3.75) opens the Node Library side bar on the node's help page
  (NodeHelpPage, fed by the nodeHelp store's openHelp(nodeDef));
- frontend 1.49.6 (ComfyUI 0.33.0) opens the right-hand properties panel on its Info tab
  (TabInfo -> NodeHelpContent, for the selected node).

Each panel must show the page itself: its `# ...` heading (the node's display name) as the
rendered title and the first line of its body, not the frontend's stand-in for a node without a
page (the "fallback-content" view: the node's description and its inputs' tooltips), and the page
must have come from the pack's docs URL. A test-only node with no page (tests/host_probes) is
opened the same way to show that the check sees that stand-in. Screenshots, a contact sheet of
every node's panel and one whole window per frontend, are kept in $SSDIFF_TEST_ARTIFACTS (default:
pytest's temporary folder), named after the frontend's version. Needs scripts/setup_browser.sh.

The server here is ComfyUI with the pack and the test-only nodes and no model file: a help page
needs none (the `server` fixture's networks would take longer to write than the whole test)."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import requests
from PIL import Image, ImageDraw
from playwright.sync_api import Page

from conftest import HOST, HOST_PROBES, REPO
from harness.headless import ComfyServer
from test_browser import artifacts, browser_on, chromium  # noqa: F401  (fixtures)

DOCS = REPO / "web" / "docs"
CONTROL_NODE = "RobustnessProbeNonFinite"
"""A test-only node (tests/host_probes) with no help page: its panel is the frontend's stand-in."""
TITLE_AT = (640, 260)
"""Where on the page each node's title is clicked."""
WINDOW_SHOT_NODE = "SSDiffSampler"
"""The node whose whole window is kept as a screenshot (the contact sheet has every panel)."""

ADD_AND_LOCATE_JS = r"""
(async ([type, x, y]) => {
  // The canvas holds this node alone, its title at (x, y) on the page (left of where 1.49's panel
  // opens, right of 1.32's side bar); returns where its title is.
  for (const node of [...(app.graph.nodes ?? app.graph._nodes)]) app.graph.remove(node);
  app.canvas.deselectAll?.();
  const node = LiteGraph.createNode(type);
  if (!node) return null;
  const box = app.canvas.canvas.getBoundingClientRect();
  const {scale, offset} = app.canvas.ds;
  const titleHeight = LiteGraph.NODE_TITLE_HEIGHT ?? 30;
  node.pos = [(x - box.left) / scale - offset[0] - 60, (y - box.top) / scale - offset[1] + titleHeight / 2];
  app.graph.add(node);
  app.canvas.setDirty(true, true);
  await new Promise(resolve => requestAnimationFrame(() => requestAnimationFrame(resolve)));
  return {x: box.left + (node.pos[0] + 60 + offset[0]) * scale,
          y: box.top + (node.pos[1] - titleHeight / 2 + offset[1]) * scale};
})
"""

SELECTED_JS = r"""
(type) => {
  const selected = Object.values(app.canvas.selected_nodes ?? {});
  return selected.length === 1 && selected[0].type === type;
}
"""

HELP_PANEL_JS = r"""
(async ([title, timeout]) => {
  // The docs panel in view (both frontends render a .node-help-content: the page as
  // .markdown-content, or their stand-in as .fallback-content); waits until it has finished
  // loading and shows `title` or the stand-in, then reports what it shows.
  const visible = element => element && element.offsetParent !== null && element.getClientRects().length > 0;
  const text = element => (element?.innerText || '').replace(/\s+/g, ' ').trim();
  const panel = () => [...document.querySelectorAll('.node-help-content')].find(visible);
  const heading = content => text(content?.querySelector('.markdown-content h1'));
  const settled = content => content && !content.querySelector('.p-progressspinner, [aria-label="Loading"]') &&
      (heading(content) === title || content.querySelector('.fallback-content'));
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline && !settled(panel())) await new Promise(resolve => setTimeout(resolve, 50));
  const content = panel();
  const container = content?.closest('.side-bar-panel, [data-testid="properties-panel"]');
  return JSON.stringify({
    found: Boolean(content),
    container: container ? (container.matches('.side-bar-panel') ? 'node library side bar' : 'properties panel') : null,
    info_tab_selected: document.querySelector('[data-testid="panel-tab-info"], #tab-info')
        ?.getAttribute('aria-selected') ?? null,
    title: heading(content),
    markdown: Boolean(content?.querySelector('.markdown-content')),
    fallback: Boolean(content?.querySelector('.fallback-content')),
    text: text(content).slice(0, 20000),
  });
})
"""

FRONTEND_VERSION_JS = "() => window.__COMFYUI_FRONTEND_VERSION__ ?? null"


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory):
    """ComfyUI with the pack (the host's custom_nodes/ links it) and the test-only nodes, no model."""
    with ComfyServer(HOST, tmp_path_factory.mktemp("docs_server"), custom_nodes=HOST_PROBES) as running:
        yield running


@pytest.fixture(scope="module")
def docs_frontend(chromium, docs_server, artifacts, request):  # noqa: F811  (fixtures)
    yield from browser_on(chromium, docs_server)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"node docs screenshots: {artifacts}")


@pytest.fixture(scope="module")
def object_info(docs_server) -> dict:
    return requests.get(f"{docs_server.url}/object_info", timeout=60).json()


@pytest.fixture(scope="module")
def pack_nodes(object_info) -> dict[str, dict]:
    nodes = {node_id: info for node_id, info in object_info.items()
             if str(info.get("category", "")).startswith("SSDiff")}
    assert nodes, "the server lists no SSDiff node"
    return dict(sorted(nodes.items()))


def page_title_and_line(node_id: str) -> tuple[str, str]:
    """The page's `# ...` title and its first line of body text, as the rendered page reads it
    (emphasis, code marks and link targets dropped)."""
    lines = [line.strip() for line in (DOCS / f"{node_id}.md").read_text(encoding="utf-8").splitlines()]
    text = [line for line in lines if line]
    title = text[0].removeprefix("# ").strip()
    body = next(line for line in text[1:] if not line.startswith(("#", "|", "```", "<", "- ", "* ", ">")))
    body = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", body)
    body = re.sub(r"[*`]|(?<![\w])_|_(?![\w])", "", body)
    return title, re.sub(r"\s+", " ", body).strip()


def open_docs(page: Page, node_id: str) -> dict:
    """Puts `node_id` on the canvas alone, clicks its title and presses the selection toolbox's
    info button; returns what the docs panel then shows (HELP_PANEL_JS) and where the help came from."""
    fetched: list[tuple[str, int]] = []

    def note(response) -> None:
        path = unquote(urlsplit(response.url).path)
        if "/docs/" in path and path.endswith(".md"):
            fetched.append((path, response.status))

    page.on("response", note)
    try:
        # 1.49 keeps its splash screen over the page a while after the app is ready.
        page.locator("#splash-loader").wait_for(state="hidden", timeout=60_000)
        where = page.evaluate(ADD_AND_LOCATE_JS, [node_id, *TITLE_AT])
        assert where is not None, f"the frontend has no node type {node_id}"
        page.mouse.click(where["x"], where["y"])
        page.wait_for_function(SELECTED_JS, arg=node_id, timeout=10_000, polling=50)
        page.locator('[data-testid="info-button"]').click(timeout=10_000)
        title = page_title_and_line(node_id)[0] if (DOCS / f"{node_id}.md").is_file() else None
        report = json.loads(page.evaluate(HELP_PANEL_JS, [title, 10_000]))
        page.wait_for_timeout(50)  # the last response's event
    finally:
        page.remove_listener("response", note)
    report["fetched"] = fetched
    return report


def panel_problems(node_id: str, display_name: str, report: dict, pack_folder: str) -> list[str]:
    title, line = page_title_and_line(node_id)
    problems = []
    if not report["found"]:
        return ["no docs panel opened"]
    if report["fallback"] or not report["markdown"]:
        problems.append("the panel shows the frontend's stand-in (description and tooltips), not the page")
    if title != display_name:
        problems.append(f"the page's title {title!r} is not the node's display name {display_name!r}")
    if report["title"] != title:
        problems.append(f"the rendered title is {report['title']!r}, not {title!r}")
    if line not in report["text"]:
        problems.append(f"the panel lacks the page's line {line!r}")
    page_url = f"/extensions/{pack_folder}/docs/{node_id}.md"
    if (page_url, 200) not in report["fetched"]:
        problems.append(f"the frontend did not fetch {page_url} (it fetched {report['fetched']})")
    return problems


def contact_sheet(shots: list[tuple[str, Path]], path: Path, columns: int = 8, scale: float = 0.5) -> None:
    """Every panel screenshot, scaled by `scale`, in a grid, each labelled with its node id."""
    images = [(name, Image.open(shot)) for name, shot in shots]
    width = max(image.width for _, image in images)
    height = max(image.height for _, image in images)
    cell = (int(width * scale), int(height * scale) + 16)
    rows = -(-len(images) // columns)
    sheet = Image.new("RGB", (cell[0] * columns, cell[1] * rows), "white")
    draw = ImageDraw.Draw(sheet)
    for index, (name, image) in enumerate(images):
        x, y = cell[0] * (index % columns), cell[1] * (index // columns)
        sheet.paste(image.convert("RGB").resize((int(image.width * scale), int(image.height * scale))), (x, y + 16))
        draw.text((x + 4, y + 2), name, fill="black")
        image.close()
    sheet.save(path)


def panel_locator(page: Page):
    """The side bar (1.32) or properties panel (1.49) that shows the docs."""
    return page.locator('.side-bar-panel:has(.node-help-content), '
                        '[data-testid="properties-panel"]:has(.node-help-content)')


def test_every_nodes_page_opens_in_the_node_docs_panel(docs_frontend, pack_nodes, artifacts,  # noqa: F811
                                                       tmp_path):
    started = time.monotonic()
    page = docs_frontend
    version = page.evaluate(FRONTEND_VERSION_JS) or "unknown"
    modules = {info["python_module"] for info in pack_nodes.values()}
    assert len(modules) == 1 and next(iter(modules)).startswith("custom_nodes."), modules
    pack_folder = next(iter(modules)).removeprefix("custom_nodes.")
    without_page = sorted(node_id for node_id in pack_nodes if not (DOCS / f"{node_id}.md").is_file())
    assert not without_page, f"nodes without a page in {DOCS}: {without_page}"

    problems: dict[str, list[str]] = {}
    reports: dict[str, dict] = {}
    shots: list[tuple[str, Path]] = []
    for node_id, info in pack_nodes.items():
        report = reports[node_id] = open_docs(page, node_id)
        found = panel_problems(node_id, info["display_name"], report, pack_folder)
        if found:
            problems[node_id] = found
        if report["found"]:
            shot = tmp_path / f"{node_id}.png"
            panel_locator(page).first.screenshot(path=shot)
            shots.append((node_id, shot))
        if node_id == WINDOW_SHOT_NODE:
            page.screenshot(path=artifacts / f"node_docs_{version}_{node_id}.png")
    if shots:
        contact_sheet(shots, artifacts / f"node_docs_{version}_all_nodes.png")
    (artifacts / f"node_docs_{version}.json").write_text(json.dumps(
        {"frontend_version": version, "panel": sorted({r["container"] for r in reports.values() if r["container"]}),
         "seconds": round(time.monotonic() - started, 1), "problems": problems,
         "nodes": {node_id: {key: value for key, value in report.items() if key != "text"}
                   for node_id, report in reports.items()}}, indent=2) + "\n")
    print(f"\nnode docs panels of frontend {version}: {artifacts}/node_docs_{version}_all_nodes.png")
    assert not problems, f"frontend {version}: pages not shown in the docs panel:\n" + json.dumps(problems, indent=2)


def test_the_check_sees_the_stand_in_for_a_node_without_a_page(docs_frontend, object_info):
    assert CONTROL_NODE in object_info, "the test-only nodes did not load"
    assert not (DOCS / f"{CONTROL_NODE}.md").exists()
    report = open_docs(docs_frontend, CONTROL_NODE)
    assert report["found"], report
    assert report["fallback"] and not report["markdown"] and not report["title"], report
    # It asked the docs URL of the node's own pack, and got nothing.
    assert any(path.endswith(f"/docs/{CONTROL_NODE}.md") and status == 404 for path, status in report["fetched"]), \
        report["fetched"]
