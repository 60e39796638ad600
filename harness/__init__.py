"""Running the pack in a real ComfyUI from outside it: a server on 127.0.0.1 (headless), ComfyUI
in this process (in_process_host), its frontend in headless Chromium (chromium_cdp), tiny random
networks of the real architectures saved as checkpoint files (tiny_models), and comparing API
workflows (workflows). Shared by the tests, the benchmarks and the scripts; never loaded by
ComfyUI itself."""
