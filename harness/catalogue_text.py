"""The catalogue (models/files.py) in words: the README's table of files and the lines of the
workflows' notes, made from it so that no second copy of it exists."""
from __future__ import annotations

from comfyui_ssdiff.models.files import CATALOGUE, CatalogueFile

README_TABLE_START = "<!-- catalogue table: made by scripts/write_catalogue_table.py from models/files.py -->"
README_TABLE_END = "<!-- end of catalogue table -->"


def size_text(size: int | None) -> str:
    return "size unknown" if size is None else f"{size / 1e6:,.1f} MB"


def source_text(entry: CatalogueFile) -> str:
    where = f"[{entry.page.removeprefix('https://')}]({entry.page})"
    inside = f", inside [`{entry.url.rsplit('/', 1)[-1]}`]({entry.url}) at `{entry.member}`" if entry.member else ""
    direct = "" if entry.member or entry.url == entry.page else f" ([file]({entry.url}))"
    return f"{where}{inside}{direct}{'; or ' + entry.also if entry.also else ''}"


def readme_table() -> str:
    """The README's table of files, between its markers."""
    rows = ["| file | for | folder (under `ComfyUI/models/`) | size | sha256 | where to get it |",
            "|---|---|---|---|---|---|"]
    for entry in CATALOGUE:
        digest = f"`{entry.sha256[:12]}...`" if entry.sha256 else "not recorded"
        optional = " (optional)" if entry.optional else ""
        rows.append(f"| `{entry.name}`{optional} | {entry.kind.value} | `{entry.folder}/` | {size_text(entry.size)} | "
                    f"{digest} | {source_text(entry)} |")
    return "\n".join([README_TABLE_START, *rows, README_TABLE_END])


def note_line(entry: CatalogueFile) -> str:
    """One file in a workflow's note."""
    inside = f" (inside `{entry.url.rsplit('/', 1)[-1]}`: `{entry.member}`)" if entry.member else ""
    return (f"- `{entry.name}` -> `ComfyUI/models/{entry.folder}/` ({entry.kind.value}, {size_text(entry.size)}): "
            f"{entry.url}{inside}")


def model_links(entries: list[CatalogueFile]) -> list[dict]:
    """properties.models of a loader node, as ComfyUI's own templates write them: the frontend's
    missing-models panel lists each with its folder and link (a file inside an archive links to
    its release page)."""
    links = []
    for entry in entries:
        link = {"name": entry.name, "url": entry.download_url or entry.page, "directory": entry.folder}
        if entry.sha256 and entry.download_url:
            link.update(hash=entry.sha256, hash_type="SHA256")
        links.append(link)
    return links
