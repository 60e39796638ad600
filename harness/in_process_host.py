"""ComfyUI started inside this Python process, as main.py starts it, for the tests and the
benchmarks that call nodes and samplers directly."""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from types import ModuleType


def start_comfyui(host_root: Path, cpu: bool = True) -> ModuleType:
    """Imports ComfyUI from `host_root` (first on sys.path, so that its `nodes` module wins over
    a pack's `nodes` package) in main.py's order and loads the custom nodes; returns `nodes`."""
    if str(host_root) not in sys.path:
        sys.path.insert(0, str(host_root))
    import comfy.options  # noqa: F401  (before cli_args is read)
    from comfy.cli_args import args
    args.cpu = cpu
    import utils.extra_config  # noqa: F401  (before `nodes`, as main.py does)
    import server
    import nodes

    # main.py creates the PromptServer before it loads any node: extensions that register routes
    # or node replacements in their comfy_entrypoint (0.33's nodes_replacements) need its instance.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server.PromptServer(loop)
    loop.run_until_complete(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))
    return nodes


def loaded_pack(repo: Path) -> ModuleType:
    """The pack's top-level module as ComfyUI imported it (from custom_nodes/, under its own name)."""
    init = (Path(repo) / "__init__.py").resolve()
    for module in list(sys.modules.values()):
        if Path(getattr(module, "__file__", "") or "").resolve() == init:
            return module
    raise LookupError(f"ComfyUI did not import the pack at {repo}")
