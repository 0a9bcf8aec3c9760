"""Header fetch for a 4.5 GB GGUF served over HTTP on 127.0.0.1 (the FAKE hub): bytes read,
requests and time, beside reading the same header from disk, and the memory plans compared.

The file is Llama-3-8B-shaped (32 layers, 4096 wide, 128256-token vocabulary with its
280k merges, Q4_K weights): a real header and tensor table followed by a sparse hole, since
only the header is ever read. It takes no disk space beyond the header.

    .venv/bin/python -m bench.header_fetch [--keep DIR] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import gguf
import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

from kobold_gui.core.hub.remote_gguf import remote_info
from kobold_gui.core.hub.search import Hub
from kobold_gui.core.models.gguf_header import read_header
from kobold_gui.core.models.gguf_info import read_gguf
from kobold_gui.core.plan.memory_plan import GiB, GpuBudget, PlanRequest, plan_memory
from kobold_gui.core.units import human_bytes
from tests.fakes.hub import FakeFile, FakeHub, FakeRepo

N_VOCAB, N_MERGES = 128256, 280147
LAYERS, EMBD, FFN, HEADS, KV_HEADS = 32, 4096, 14336, 32, 8


def write_llama3_8b_header(path: Path, weights: str = "Q4_K", file_type: str = "Q4_K_M") -> Path:
    """A Llama-3-8B-shaped GGUF: the real header and tensor table, the data a sparse hole.
    `weights` is the type of the big matrices, `file_type` what general.file_type says."""
    q4k, f32 = GGMLQuantizationType[weights], GGMLQuantizationType.F32
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("Meta-Llama-3-8B-Instruct (shape only)")
    w.add_block_count(LAYERS)
    w.add_context_length(8192)
    w.add_embedding_length(EMBD)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(500000.0)
    w.add_file_type(getattr(gguf.LlamaFileType, f"MOSTLY_{file_type}"))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("llama-bpe")
    w.add_token_list([f"tok{i:06d}ĠĠ" for i in range(N_VOCAB)])
    w.add_token_types([1] * N_VOCAB)
    w.add_token_merges([f"Ġt{i % 997} e{i:06d}" for i in range(N_MERGES)])
    w.add_bos_token_id(128000)
    w.add_eos_token_id(128009)
    w.add_chat_template("{% for m in messages %}{{ m['content'] }}{% endfor %}")

    def add(name: str, ne: tuple[int, ...], qt: GGMLQuantizationType) -> None:
        block, size = GGML_QUANT_SIZES[qt]
        n = int(np.prod(ne))
        w.add_tensor_info(name, tuple(reversed(ne)), np.dtype(np.float32), n // block * size, qt)

    kv = KV_HEADS * EMBD // HEADS
    add("token_embd.weight", (EMBD, N_VOCAB), q4k)
    add("output_norm.weight", (EMBD,), f32)
    add(
        "output.weight",
        (EMBD, N_VOCAB),
        q4k if weights in ("F16", "Q8_0") else GGMLQuantizationType.Q6_K,
    )
    for i in range(LAYERS):
        p = f"blk.{i}."
        add(p + "attn_norm.weight", (EMBD,), f32)
        add(p + "attn_q.weight", (EMBD, EMBD), q4k)
        add(p + "attn_k.weight", (EMBD, kv), q4k)
        add(p + "attn_v.weight", (EMBD, kv), q4k)
        add(p + "attn_output.weight", (EMBD, EMBD), q4k)
        add(p + "ffn_norm.weight", (EMBD,), f32)
        add(p + "ffn_gate.weight", (EMBD, FFN), q4k)
        add(p + "ffn_up.weight", (EMBD, FFN), q4k)
        add(p + "ffn_down.weight", (FFN, EMBD), q4k)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    header = read_header(path)
    end = max(header.data_offset + t.offset + t.n_bytes for t in header.tensors)
    with path.open("r+b") as f:
        f.truncate(end)  # sparse: the weights are a hole
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--keep", type=Path, help="write the file here and keep it")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    folder = a.keep or Path(tempfile.mkdtemp(prefix="header-fetch-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "Meta-Llama-3-8B-Instruct-Q4_K_M.gguf"
    t0 = time.perf_counter()
    write_llama3_8b_header(path)
    on_disk = path.stat().st_blocks * 512
    print(
        f"wrote {path.name}: {human_bytes(path.stat().st_size)} "
        f"({human_bytes(on_disk)} on disk) in {time.perf_counter() - t0:.1f} s"
    )

    local_times = []
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        local = read_gguf(path)
        local_times.append(time.perf_counter() - t0)
    repo = FakeRepo("bench/Llama-3-8B-GGUF", {path.name: FakeFile(path, sha256="0" * 64)})
    with FakeHub([repo]) as fake:
        hub = Hub(fake.endpoint)
        files = hub.list_files(repo.repo_id)
        entry = files.entries[0]
        remote_times, stats = [], None
        for _ in range(a.repeat):
            sent = fake.bytes_sent
            t0 = time.perf_counter()
            remote, stats = remote_info(hub, files, entry)
            remote_times.append(time.perf_counter() - t0)
            assert fake.bytes_sent - sent == stats.bytes_read
        ranges = fake.ranges(path.name)[-stats.requests :]  # type: ignore[union-attr]
    assert stats is not None
    header_bytes = read_header(path).data_offset
    gpus = [GpuBudget("RTX 4090", 24 * GiB, 23 * GiB), GpuBudget("RTX 3060", 12 * GiB, 11 * GiB)]
    same = all(
        plan_memory(remote, req, g) == plan_memory(local, req, g)
        for req in (
            PlanRequest(33, 8192, 512),
            PlanRequest(20, 32768, 1024),
            PlanRequest(0, 8192, 512),
        )
        for g in (gpus, gpus[:1], [])
    )
    print()
    print(f"{'':34}{'HTTP range reads':>20}{'local file':>14}")
    print(f"{'file size':34}{human_bytes(entry.size):>20}{human_bytes(local.file_size):>14}")
    print(f"{'header + tensor table (data offset)':34}{human_bytes(header_bytes):>20}{'':>14}")
    print(f"{'bytes read':34}{human_bytes(stats.bytes_read):>20}{'(mmap)':>14}")
    print(f"{'share of the file read':34}{stats.bytes_read / entry.size:>20.4%}{'':>14}")
    print(f"{'requests':34}{stats.requests:>20}{'':>14}")
    print(
        f"{'time (median of ' + str(a.repeat) + ')':34}"
        f"{statistics.median(remote_times) * 1000:>17.0f} ms"
        f"{statistics.median(local_times) * 1000:>11.0f} ms"
    )
    print(f"{'tensors':34}{len(remote.tensors):>20}{len(local.tensors):>14}")
    print(f"ranges asked: {', '.join(ranges)}")
    print(f"memory plans identical (9 requests x GPU sets): {same}")
    if not a.keep:
        path.unlink()
        folder.rmdir()


if __name__ == "__main__":
    main()
