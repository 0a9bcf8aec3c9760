"""Writes the synthetic models the GPU checks use: a Llama-3-8B shape and a 1B shape in Q4_0
(random weights, a real tokenizer from a vocab GGUF), about 35 s on the GPU machine.

    python3 -m bench.write_shapes VOCAB.gguf [OUT_DIR=/tmp]   -> OUT_DIR/m8.gguf, OUT_DIR/m1.gguf
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from kobold_gui.dev.synthetic_gguf import Shape, write_model

SHAPES = {
    "m8.gguf": Shape(layers=32, embd=4096, ffn=14336, heads=32, kv_heads=8, context=131072),
    "m1.gguf": Shape(layers=16, embd=2048, ffn=8192, heads=32, kv_heads=8, context=131072),
}


def main() -> None:
    vocab = Path(sys.argv[1])
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("/tmp")
    started = time.perf_counter()
    for name, shape in SHAPES.items():
        if not (out / name).exists():
            write_model(out / name, shape, "Q4_0", vocab)
    print(f"models in {out} after {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
