#!/usr/bin/env bash
# Issue 24's GPU-side checks on the device machine, in one call (the machine stays warm only
# 30 s): the CUDA module built with tools/dev.sh's flags (sm_90 only: the H100/H200) beside
# the CPU base build, the self-test plain and with only the driver (env -i), where cudart and
# cuBLAS come from, and --benchmark through CUDA and through Vulkan on the same card.
# NOT RUN YET: no device machine was lent in the session that wrote it (2026-12-07).
#
# Carry (prepared on the dev machine, in an ignored folder .gpudl/, about 39 MB):
#   llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl   the base build from the wheel cache
#   llama-src.tar.xz       llama-cpp-python's vendor/llama.cpp, slimmed (no other GPU
#                          backends, docs, models, tools): 2.5 MB
#   ggml-vocab-llama-bpe.gguf, wheels/ (gguf, diskcache, platformdirs)
#   libggml-vulkan.so.xz   the Vulkan module built here (tools/dev.sh), 3.2 MB
#   libvulkan1_*.deb       Debian's Vulkan loader (the device has NVIDIA's ICD, no loader)
# Run there: bash bench/gpu_backends.sh .gpudl   (writes $OUT/*.json, *.txt)
set -u
C=${1:-.gpudl}
python3 -m pip install -q --no-deps --target /tmp/site "$C"/wheels/*.whl "$C"/llama_cpp_python-*.whl
for f in "$C"/*.deb; do dpkg -x "$f" /; done; ldconfig
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 PATH=/usr/local/cuda/bin:$PATH
LIB=/tmp/site/llama_cpp/lib
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
# The CUDA module alone, in the background while the models are written.
mkdir -p /tmp/b && tar xJf "$C"/llama-src.tar.xz -C /tmp/b
ARGS=$(bash tools/dev.sh cmake-args cuda | sed 's/-DCMAKE_CUDA_ARCHITECTURES=[^ ]*/-DCMAKE_CUDA_ARCHITECTURES=90-real/')
( t0=$(date +%s)
  cmake -S /tmp/b/llama.cpp -B /tmp/b/build -G Ninja $ARGS -DCMAKE_INSTALL_RPATH='$ORIGIN' >/tmp/b/cmake.log 2>&1 &&
  cmake --build /tmp/b/build --target ggml-cuda -j"$(nproc)" >/tmp/b/build.log 2>&1 &&
  echo "cuda module built in $(( $(date +%s) - t0 )) s" >/tmp/b/DONE || echo failed >/tmp/b/FAILED ) &
python3 -m bench.write_shapes "$C"/ggml-vocab-llama-bpe.gguf /tmp
wait
[ -f /tmp/b/DONE ] || { tail -30 /tmp/b/build.log /tmp/b/cmake.log; exit 1; }
cat /tmp/b/DONE
cp /tmp/b/build/bin/libggml-cuda.so $LIB/ && xz -dc "$C"/libggml-vulkan.so.xz >$LIB/libggml-vulkan.so
readelf -d $LIB/libggml-cuda.so | grep -E "RUNPATH|NEEDED"
export VK_DRIVER_FILES=/usr/share/vulkan/icd.d/nvidia_icd.json
[ -f $VK_DRIVER_FILES ] || export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
M="--gpulayers 999 --flashattention on --contextsize 16384"
python3 -m kobold_gui --self-test --model /tmp/m1.gguf $M >$OUT/selftest.json
# The bundle's layout: the CUDA runtime beside the module; only the driver from the system.
for l in libcudart.so.13 libcublas.so.13 libcublasLt.so.13; do cp -L /usr/local/cuda/lib64/$l $LIB/; done
env -i PATH=/usr/bin:/bin HOME=/tmp PYTHONPATH=$PYTHONPATH VK_DRIVER_FILES=$VK_DRIVER_FILES LD_DEBUG=libs \
  python3 -m kobold_gui --self-test --model /tmp/m1.gguf $M >$OUT/selftest_envi.json 2>/tmp/lddebug.txt
grep -E "calling init: .*(cudart|cublas|libcuda\.so)" /tmp/lddebug.txt | sort -u
env -i PATH=/usr/bin:/bin HOME=/tmp PYTHONPATH=$PYTHONPATH VK_DRIVER_FILES=$VK_DRIVER_FILES KOBOLD_GUI_SKIP_BACKENDS=cuda \
  python3 -m kobold_gui --self-test --model /tmp/m1.gguf $M >$OUT/selftest_vulkan.json
B="--benchmark --pairs 2048:2048 --prompt-tokens 8192 --gen-tokens 64 --repeats 1"
{ echo "== CUDA module"; python3 -m kobold_gui --model /tmp/m8.gguf $M $B 2>&1 | tail -4
  echo "== Vulkan module (KOBOLD_GUI_SKIP_BACKENDS=cuda)"
  KOBOLD_GUI_SKIP_BACKENDS=cuda python3 -m kobold_gui --model /tmp/m8.gguf $M $B 2>&1 | tail -4
} | tee $OUT/cuda_vs_vulkan.txt
