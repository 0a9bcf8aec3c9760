#!/usr/bin/env bash
# Issue 24's GPU-side checks on the device machine, in stages that chain while it stays warm
# (30 s after a call; a call lasts at most 10 minutes):
#   start   the DL build of llama-cpp-python (CPU variants + RPC, built on the dev machine)
#           installed, the CUDA module built with tools/dev.sh's flags (sm_90 only: the
#           H100/H200) in the background, the 8B and 1B shapes written meanwhile
#   checks  waits for the module, then the self-test plain and with only the driver (env -i,
#           the CUDA runtime and cuBLAS beside the module as in the bundle), where cudart and
#           cuBLAS come from (LD_DEBUG), and --benchmark through CUDA and through Vulkan on
#           the same card
#   plan    the memory plan vs llama.cpp's buffers and NVML's rise after a first full ubatch
#           (bench/plan_accuracy.py --decode): CUDA at n_ubatch 512/2048/4096, flash attention
#           on and off (issue 24's known miss: off at 4096), and the Vulkan module's context
#   slots   issue 26's bench/slots_http.py on the 8B shape (queue vs 16 slots)
#   all     start, checks, slots and plan in one call (when device time is short)
#   prebuilt  (carry .gpu from ../shared/device/prepare-carry.sh and .gpusrv: the server's
#           wheels) no module build: the shared CUDA build, the shapes, issue 26's slots bench,
#           what `parallel` auto chooses on the GPU, and the plan after a full ubatch with
#           flash attention off (issue 24's known miss)
#   bundle  (carry .gpuqt: a slimmed PySide6 + pyqtgraph, PyInstaller's wheels, the window's
#           other wheels) packaging/build.sh --backends cpu,cuda,vulkan there; the bundle's
#           self-test with only the driver, the bundle vs the source build (--benchmark,
#           alternating), and the window (offscreen) serving a model it loaded on the GPU
#
# Carry (prepared on the dev machine, in an ignored folder .gpudl/, about 46 MB):
#   llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl   the base build from the wheel cache
#   llama-src.tar.xz       llama-cpp-python's vendor/llama.cpp, slimmed (no other GPU
#                          backends, docs, models, tools): 2.5 MB
#   ggml-vocab-llama-bpe.gguf, wheels/ (gguf, diskcache, platformdirs), srv/ (the server's
#                          wheels for Python 3.12: fastapi, uvicorn, sse-starlette, pydantic, httpx)
#   libggml-vulkan.so.xz   the Vulkan module built here (tools/dev.sh), 3.2 MB
#   libvulkan1_*.deb       Debian's Vulkan loader (the device has NVIDIA's ICD, no loader)
# .gpuqt/ (about 29 MB; `bundle` only): qt-slim.tar.xz, made in .venv's site-packages with
#   tar cJf qt-slim.tar.xz PySide6/*.py PySide6/support PySide6/libpyside6* \
#     PySide6/PySide6_Essentials.json PySide6/Qt{Core,Gui,Widgets,OpenGL,OpenGLWidgets,Svg,Test,
#     Network,DBus}.abi3.so PySide6/Qt/lib/libQt6{same}.so* PySide6/Qt/lib/libicu* \
#     PySide6/Qt/plugins/{platforms/libqoffscreen,imageformats/libqsvg,iconengines/libqsvgicon}.so \
#     shiboken6 shiboken6-*.dist-info pyside6_essentials-*.dist-info pyqtgraph pyqtgraph-*.dist-info
#   (what the window loads offscreen); pyi/ (pyinstaller, pyinstaller-hooks-contrib, altgraph);
#   wheels/ (huggingface_hub and keyring with their pure-Python dependencies, for Python 3.12).
# .gpusrv/ (`prebuilt` only): the srv/ wheels above.
# Run there: bash bench/gpu_backends.sh STAGE [.gpudl]   (writes $OUT/*.json, *.txt)
set -u
STAGE=$1
C=${2:-.gpudl}
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 PATH=/usr/local/cuda/bin:$PATH
export VK_DRIVER_FILES=/usr/share/vulkan/icd.d/nvidia_icd.json
LIB=/tmp/site/llama_cpp/lib
M="--gpulayers 999 --flashattention on --contextsize 16384"

start() {
  python3 -m pip install -q --no-deps --target /tmp/site "$C"/wheels/*.whl "$C"/srv/*.whl \
    "$C"/llama_cpp_python-*.whl
  for f in "$C"/*.deb; do dpkg -x "$f" /; done
  ldconfig
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  # What Qt would need from the system (the window check carries what is missing).
  ldd --version | head -1; grep PRETTY /etc/os-release
  for l in libEGL.so.1 libGL.so.1 libX11.so.6 libdbus-1.so.3 libfontconfig.so.1 \
    libfreetype.so.6 libxkbcommon.so.0 libglib-2.0.so.0 libgthread-2.0.so.0 libzstd.so.1; do
    ldconfig -p | grep -q "$l " && echo "has $l" || echo "MISSING $l"
  done
  mkdir -p /tmp/b && tar xJf "$C"/llama-src.tar.xz -C /tmp/b
  local args
  args=$(bash tools/dev.sh cmake-args cuda |
    sed 's/-DCMAKE_CUDA_ARCHITECTURES=[^ ]*/-DCMAKE_CUDA_ARCHITECTURES=90-real/')
  echo "cmake $args"
  # setsid: the build goes on if this call ends first; `checks` waits for it.
  setsid bash -c "t0=\$(date +%s)
    cmake -S /tmp/b/llama.cpp -B /tmp/b/build -G Ninja $args -DCMAKE_INSTALL_RPATH='\$ORIGIN' \
      >/tmp/b/cmake.log 2>&1 &&
    cmake --build /tmp/b/build --target ggml-cuda -j\$(nproc) >/tmp/b/build.log 2>&1 &&
    echo \"cuda module built in \$(( \$(date +%s) - t0 )) s\" >/tmp/b/DONE ||
    echo failed >/tmp/b/FAILED" </dev/null >/dev/null 2>&1 &
  python3 -m bench.write_shapes "$C"/ggml-vocab-llama-bpe.gguf /tmp
}

wait_module() {
  for _ in $(seq 1 170); do
    [ -f /tmp/b/DONE ] || [ -f /tmp/b/FAILED ] && break
    sleep 3
  done
  [ -f /tmp/b/DONE ] || { tail -30 /tmp/b/build.log /tmp/b/cmake.log; exit 1; }
  cat /tmp/b/DONE
  cp /tmp/b/build/bin/libggml-cuda.so $LIB/ && xz -dc "$C"/libggml-vulkan.so.xz >$LIB/libggml-vulkan.so
  ls -la $LIB
  readelf -d $LIB/libggml-cuda.so | grep -E "RUNPATH|NEEDED"
}

checks() {
  wait_module
  python3 -m kobold_gui --self-test --model /tmp/m1.gguf $M >$OUT/selftest.json
  # The bundle's layout: the CUDA runtime beside the module; only the driver from the system.
  for l in libcudart.so.13 libcublas.so.13 libcublasLt.so.13; do
    cp -L /usr/local/cuda/lib64/$l $LIB/
  done
  local envi="env -i PATH=/usr/bin:/bin HOME=/tmp PYTHONPATH=$PYTHONPATH VK_DRIVER_FILES=$VK_DRIVER_FILES"
  $envi LD_DEBUG=libs python3 -m kobold_gui --self-test --model /tmp/m1.gguf $M \
    >$OUT/selftest_envi.json 2>/tmp/lddebug.txt
  grep -E "calling init: .*(cudart|cublas|libcuda\.so)" /tmp/lddebug.txt | sort -u | tee $OUT/lddebug.txt
  $envi KOBOLD_GUI_SKIP_BACKENDS=cuda python3 -m kobold_gui --self-test --model /tmp/m1.gguf $M \
    >$OUT/selftest_vulkan.json
  local b="--benchmark --pairs 512:512,2048:2048 --prompt-tokens 8192 --gen-tokens 64 --repeats 1"
  {
    echo "== CUDA module"
    python3 -m kobold_gui --model /tmp/m8.gguf $M $b 2>&1 | tail -5
    echo "== Vulkan module (KOBOLD_GUI_SKIP_BACKENDS=cuda)"
    KOBOLD_GUI_SKIP_BACKENDS=cuda python3 -m kobold_gui --model /tmp/m8.gguf $M $b 2>&1 | tail -5
  } | tee $OUT/cuda_vs_vulkan.txt
}

plan() {
  local p="python3 -m bench.plan_accuracy --layers all --ctx 8192 --ubatch 512,2048,4096 --decode"
  $p --fa 1,0 --model /tmp/m1.gguf --json $OUT/plan_decode_cuda_1b.json | tail -7
  $p --fa 1,0 --model /tmp/m8.gguf --json $OUT/plan_decode_cuda_8b.json | tail -7
  KOBOLD_GUI_SKIP_BACKENDS=cuda $p --fa 1 --backend Vulkan --model /tmp/m8.gguf \
    --json $OUT/plan_decode_vulkan_8b.json | tail -4
}

slots() {
  python3 -m bench.slots_http --model /tmp/m8.gguf --parallel 16 --tokens 96 \
    -- --gpulayers 999 --flashattention on --contextsize 16384 2>&1 | tee $OUT/slots_http.txt
}

prebuilt() {
  mkdir -p /tmp/site && tar xJf .gpu/lcp-cuda-sm90.tar.xz -C /tmp/site &&
    python3 -m pip install -q --no-deps --target /tmp/site .gpu/wheels/*.whl .gpusrv/*.whl
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -m bench.write_shapes .gpu/vocab/ggml-vocab-llama-bpe.gguf /tmp
  python3 -m kobold_gui --model /tmp/m8.gguf --gpulayers 999 --flashattention on \
    --contextsize 16384 --show-config 2>&1 | grep -i parallel | tee $OUT/parallel_auto.txt
  timeout 200 bash "$0" slots
  local p="python3 -m bench.plan_accuracy --layers all --ctx 8192 --ubatch 2048,4096 --decode"
  timeout 45 $p --fa 0,1 --model /tmp/m1.gguf --json $OUT/plan_decode_cuda_1b.json | tail -5
  timeout 60 $p --fa 0,1 --model /tmp/m8.gguf --json $OUT/plan_decode_cuda_8b.json | tail -5
}

all() {
  start
  checks
  timeout 240 bash "$0" slots "$C"
  timeout 150 bash "$0" plan "$C"
}

bundle() {
  python3 -m pip install -q --no-deps --target /tmp/site .gpuqt/pyi/*.whl .gpuqt/wheels/*.whl
  tar xJf .gpuqt/qt-slim.tar.xz -C /tmp/site
  printf '#!/bin/sh\nexec python3 -m PyInstaller "$@"\n' >/tmp/pyinstaller && chmod +x /tmp/pyinstaller
  local t0=$(date +%s)
  PYINSTALLER=/tmp/pyinstaller bash packaging/build.sh --no-setup --backends cpu,cuda,vulkan \
    --dist /tmp/dist --work /tmp/work 2>&1 | grep -v "^[0-9]* WARNING: \(Library not found\|Hidden import\)" | tail -8
  echo "bundle built in $(( $(date +%s) - t0 )) s"
  local exe=/tmp/dist/kobold-gui/kobold-gui
  du -sh /tmp/dist/kobold-gui/_internal/llama_cpp/lib /tmp/dist/kobold-gui
  ls /tmp/dist/kobold-gui/_internal/llama_cpp/lib
  local envi="env -i PATH=/usr/bin:/bin HOME=/tmp/h VK_DRIVER_FILES=$VK_DRIVER_FILES"
  $envi LD_DEBUG=libs $exe --self-test --model /tmp/m1.gguf $M >$OUT/bundle_selftest.json 2>/tmp/ld2.txt
  grep -E "calling init: .*(cudart|cublas|libcuda\.so|ggml-cuda)" /tmp/ld2.txt | sort -u | tee $OUT/bundle_lddebug.txt
  local b="--benchmark --pairs 512:512 --prompt-tokens 8192 --gen-tokens 128 --repeats 1"
  for i in 1 2; do
    echo "== bundle $i"; $envi $exe --model /tmp/m8.gguf $M $b 2>&1 | tail -2
    echo "== source $i"; python3 -m kobold_gui --model /tmp/m8.gguf $M $b 2>&1 | tail -2
  done | tee $OUT/bundle_vs_source.txt
  # The window, offscreen, from the bundle: --port makes it serve and load the model.
  $envi QT_QPA_PLATFORM=offscreen $exe --model /tmp/m1.gguf $M --port 5077 >/tmp/win.log 2>&1 &
  local pid=$!
  for _ in $(seq 1 120); do
    curl -sf http://127.0.0.1:5077/api/v1/model >/dev/null && break
    sleep 1
  done
  {
    curl -s http://127.0.0.1:5077/api/v1/model; echo
    curl -s http://127.0.0.1:5077/api/v1/generate -H 'Content-Type: application/json' \
      -d '{"prompt": "Hello", "max_length": 16}'; echo
    nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv
    echo "window pid $pid"
    python3 -c "import sqlite3,glob; [print(f, sqlite3.connect(f).execute(\"select name from sqlite_master where sql like '%fts5%'\").fetchall()) for f in glob.glob('/tmp/h/**/*.sqlite3', recursive=True)]"
  } 2>&1 | tee $OUT/bundle_window.txt
  kill $pid; sleep 2; tail -20 /tmp/win.log >>$OUT/bundle_window.txt
}

"$STAGE"
