#!/usr/bin/env bash
# Build the double-click bundle of kobold-gui with PyInstaller.
#   bash packaging/build.sh [--backends cpu,cuda,vulkan] [--onefile] [--with-model] [--dist DIR]
#     [--headless]  no window: the CLI and the API server only (no Qt in the bundle)
#     [--no-setup]  bundle the Python environment as it is (PYINSTALLER=path, e.g. elsewhere)
# Sets up the development environment first (tools/dev.sh setup) on a fresh machine.
# --backends: the GPU modules the bundle carries beside the CPU ones (default: vulkan, and
# cuda where a whole CUDA toolkit is there: nvcc and cuBLAS). One folder runs on machines with or without
# GPUs: a module whose driver is missing does not load, and the app says why.
# The result: DIR/kobold-gui/kobold-gui (one folder, default) or DIR/kobold-gui (one file).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dist="$root/dist" work="$root/build"
export KOBOLD_GUI_ONEFILE=0 KOBOLD_GUI_BUNDLE_MODEL=0 KOBOLD_GUI_HEADLESS=0
backends=cpu,vulkan setup=1
bash "$root/tools/dev.sh" has-cuda >/dev/null && backends=cpu,cuda,vulkan
while [ $# -gt 0 ]; do
  case $1 in
    --backends) backends=$2; shift ;;
    --headless) KOBOLD_GUI_HEADLESS=1 ;;
    --no-setup) setup=0 ;;
    --onefile) KOBOLD_GUI_ONEFILE=1 ;;
    --with-model) KOBOLD_GUI_BUNDLE_MODEL=1 ;;
    --dist) dist=$2; shift ;;
    --work) work=$2; shift ;;
    *) echo "usage: bash packaging/build.sh [--backends cpu,cuda,vulkan] [--onefile] [--with-model] [--dist DIR]" >&2; exit 2 ;;
  esac
  shift
done
echo "backends: $backends"
[ $setup = 1 ] && KOBOLD_GUI_BACKENDS=$backends bash "$root/tools/dev.sh" setup
pyinstaller=${PYINSTALLER:-$root/.venv/bin/pyinstaller}
"$pyinstaller" --noconfirm --clean --log-level WARN \
  --distpath "$dist" --workpath "$work" "$root/packaging/kobold-gui.spec"
cp "$root/resources/kobold-gui.desktop" "$dist/" 2>/dev/null || true
du -sh "$dist"/kobold-gui* | sed 's/^/bundle size: /'
