#!/usr/bin/env bash
# Build the double-click bundle of kobold-gui with PyInstaller.
#   bash packaging/build.sh [--onefile] [--with-model] [--dist DIR]
# Sets up the development environment first (tools/dev.sh setup) on a fresh machine.
# The result: DIR/kobold-gui/kobold-gui (one folder, default) or DIR/kobold-gui (one file).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dist="$root/dist" work="$root/build"
export KOBOLD_GUI_ONEFILE=0 KOBOLD_GUI_BUNDLE_MODEL=0
while [ $# -gt 0 ]; do
  case $1 in
    --onefile) KOBOLD_GUI_ONEFILE=1 ;;
    --with-model) KOBOLD_GUI_BUNDLE_MODEL=1 ;;
    --dist) dist=$2; shift ;;
    --work) work=$2; shift ;;
    *) echo "usage: bash packaging/build.sh [--onefile] [--with-model] [--dist DIR]" >&2; exit 2 ;;
  esac
  shift
done
bash "$root/tools/dev.sh" setup
"$root/.venv/bin/pyinstaller" --noconfirm --clean --log-level WARN \
  --distpath "$dist" --workpath "$work" "$root/packaging/kobold-gui.spec"
cp "$root/resources/kobold-gui.desktop" "$dist/" 2>/dev/null || true
du -sh "$dist"/kobold-gui* | sed 's/^/bundle size: /'
