#!/usr/bin/env bash
# On the GPU machine (device tool, carry .gpu made with prepare-carry.sh --source): build
# llama-cpp-python with CUDA and the RPC backend into .gpubuild/site (about 6 min on 16
# cores), the pure-Python wheels beside it, and the 8B shape into .gpubuild/models.
set -euo pipefail
mkdir -p .gpubuild/site .gpubuild/models
python3 -m pip install -q --no-deps --target .gpubuild/site .gpu/wheels/*.whl
export PYTHONPATH=$PWD/.gpubuild/site:$PWD
python3 -m bench.write_shapes .gpu/vocab/ggml-vocab-llama-bpe.gguf .gpubuild/models &
writer=$!
CMAKE_BUILD_PARALLEL_LEVEL=16 CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90 \
-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_RPC=ON" \
  python3 -m pip install -q --no-build-isolation --no-deps --target .gpubuild/site \
  .gpu/llama-cpp-python
wait $writer
python3 -c "import kobold_gui, llama_cpp; from kobold_gui.core.remote.rpc_backend import has_rpc; \
from kobold_gui.core.llama.library import backend_info; print('rpc', has_rpc(), backend_info())"
ls -la .gpubuild/models
