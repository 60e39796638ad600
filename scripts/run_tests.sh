#!/usr/bin/env bash
# The whole test suite on one real ComfyUI host: builds the host (scripts/setup_host.sh, same
# options), installs the browser (scripts/setup_browser.sh), then runs pytest in the host's own
# virtual environment. Arguments after the host options go to pytest.
#
#   bash scripts/run_tests.sh                          ComfyUI 0.3.75 from PyPI
#   bash scripts/run_tests.sh --comfyui ~/ComfyUI      your own ComfyUI checkout (copied, never written)
#   bash scripts/run_tests.sh --comfyui DIR -k browser -x
#
#   SSDIFF_TEST_ARTIFACTS   where the browser screenshots go (default: pytest's temporary folder)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
host_options=()
while [ $# -gt 0 ]; do
  case "$1" in
    --comfyui) host_options+=("$1" "${2:?--comfyui needs a ComfyUI folder}"); shift 2 ;;
    --comfyui=*) host_options+=("$1"); shift ;;
    *) break ;;
  esac
done

# The set-up's log is shown as it runs (through a copy of stdout: reopening /dev/stdout or
# /dev/stderr would truncate a log file they point at); its last line names the venv.
exec 3>&1
ready="$(bash "$repo/scripts/setup_host.sh" "${host_options[@]}" | tee >(cat >&3) | tail -n 1)"
exec 3>&-
venv="$(sed -nE 's/^host ready: venv=(.*) comfyui=.*/\1/p' <<<"$ready")"
comfyui="$(sed -nE 's/^host ready: venv=.* comfyui=(.*)/\1/p' <<<"$ready")"
bash "$repo/scripts/setup_browser.sh"
cd "$repo"
# Compiled once here, not again by every ComfyUI the tests start (where PYTHONDONTWRITEBYTECODE
# is set, as on some CI images, nothing would keep the bytecode otherwise).
"$venv/bin/python" -m compileall -q -x '/custom_nodes/' "$comfyui" > /dev/null || true
"$venv/bin/python" -m compileall -q "$repo/__init__.py" "$repo"/{comfy_adapter,harness,models,nodes,priors,ssdiff_core,training} \
  > /dev/null
exec "$venv/bin/python" -m pytest tests "$@"
