"""The headless commands: --show-config, --prompt, --list-gpus, --self-test, --plan. Each
runs on the Qt-free core, as the window does."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from kobold_gui.cli.common import model_path, open_inventory, resolve
from kobold_gui.cli.parser import CliError
from kobold_gui.core.engine.choice import engine_for
from kobold_gui.core.engine.estimate import estimate_buffers
from kobold_gui.core.engine.prompt_template import Message
from kobold_gui.core.engine.protocol import Engine
from kobold_gui.core.engine.types import EngineError, GenerationResult, ModelLost, SamplingParams
from kobold_gui.core.hardware.probe import probe_hardware
from kobold_gui.core.launch.parallel import cost_note, sharing_note
from kobold_gui.core.launch.resolve import ResolvedLaunch
from kobold_gui.core.launch.split_rules import tensor_split_line
from kobold_gui.core.llama.library import backend_info
from kobold_gui.core.models.gguf_info import read_gguf
from kobold_gui.core.units import human_bytes


def show_config(args: argparse.Namespace) -> int:

    path = model_path(args)
    info = read_gguf(path)
    backend = backend_info()
    resolved = resolve(args, path, info)
    data = resolved.to_json()
    data["backend"] = {"name": backend.name, "gpu_offload": backend.gpu_offload}
    data["model_info"] = {k: str(v) for k, v in info.summary().items()}
    if args.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        eff = data["effective"]
        print(f"model        {path}")
        print(f"backend      {backend.name}")
        print(f"batch        {eff['batch_label']}")
        asked = resolved.config.contextsize
        padded = f" ({asked} asked, padded to a multiple of 256)" if eff["n_ctx"] != asked else ""
        print(f"context      {eff['n_ctx']} tokens{padded}")
        print(f"GPU layers   {eff['n_gpu_layers']} ({eff['gpu_layers_note']})")
        print(f"threads      {eff['n_threads']}")
        print(f"flash attn   {eff['flash_attn']}")
    return 0


def run_prompt(args: argparse.Namespace) -> int:

    if not args.prompt.strip():
        raise CliError("the prompt is empty")
    if args.max_tokens < 1:
        raise CliError("--max-tokens must be at least 1")
    if args.temperature < 0:
        raise CliError("--temperature must be 0 (always the likeliest token) or more")
    path = model_path(args)
    info = read_gguf(path)
    resolved = resolve(args, path, info)
    engine = engine_for(resolved)
    engine.load(resolved, info=info)
    messages = [Message("system", args.system)] if args.system else []
    messages.append(Message("user", args.prompt))
    params = SamplingParams(
        max_tokens=args.max_tokens, temperature=args.temperature, seed=args.seed
    )
    try:
        result = _chat_until_stopped(engine, messages, params)
    finally:
        engine.close()
    if isinstance(result, int):
        return result
    sys.stdout.write("\n")
    sys.stdout.flush()
    print(
        f"[{result.generated_tokens} tokens, {result.tokens_per_s:.1f} tokens/s, "
        f"first token after {result.time_to_first_token_s * 1000:.0f} ms, "
        f"prompt {result.prompt_tokens} tokens, ended: {result.stop_reason}]",
        file=sys.stderr,
    )
    return 130 if result.stop_reason == "stopped" else 0


def _chat_until_stopped(
    engine: Engine, messages: list[Message], params: SamplingParams
) -> GenerationResult | int:
    """Stream the reply; Ctrl+C or SIGTERM stops it (within a second: the engine's child is
    ended when it does not answer, core/engine/child_process.py). An exit code when the
    engine had to be ended for it."""
    cancel = threading.Event()
    stopped_by: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        stopped_by.append(signum)
        cancel.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return engine.chat(messages, params, _write_stdout, cancel)
    except ModelLost as e:  # the engine did not answer Stop (or a machine was lost meanwhile)
        if not stopped_by:
            raise
        print(f"\nkobold-gui: {e}", file=sys.stderr)
        return 128 + stopped_by[0]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _write_stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def list_gpus(args: argparse.Namespace) -> int:

    source = open_inventory()
    report = probe_hardware(source.snapshot())
    source.close()
    inv = report.inventory
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        if inv.gpus:
            print(f"NVIDIA driver {inv.driver_version}, CUDA {inv.cuda_driver_version}")
        for g in inv.gpus:
            if g.lost:
                print(f"GPU {g.index}  {g.name}  LOST: {g.error}")
                continue
            temp = f"{g.temperature_c} °C" if g.temperature_c is not None else "—"
            print(
                f"GPU {g.index}  {g.name}  {g.pci_bus_id}  "
                f"{human_bytes(g.memory_free)} free of {human_bytes(g.memory_total)}  "
                f"use {g.util_gpu if g.util_gpu is not None else '—'} %  {temp}"
            )
        print(
            f"llama.cpp backend: {report.backend} (GPU offload: "
            f"{'yes' if report.gpu_offload else 'no'})"
        )
        for d in report.devices:
            nvml = report.nvml_index_of_device.get(d.name)
            seen = f" = GPU {nvml}" if nvml is not None else ""
            print(f"  device {d.name} ({d.kind}): {d.description}{seen}")
    if not inv.gpus and inv.message:
        print(inv.message, file=sys.stderr)
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def show_plan(args: argparse.Namespace) -> int:
    path = model_path(args)
    info = read_gguf(path)
    resolved = resolve(args, path, info)
    plan = resolved.plan
    # On this machine's own devices llama.cpp can say what it would allocate (no-alloc).
    # No estimate over remote devices: it would register them in this process.
    estimate = None if args.assume_gpus or resolved.rpc_servers else _compute_estimate(resolved)
    if args.json:
        data = resolved.to_json()
        data["llama_cpp_compute_estimate"] = estimate
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        print(f"model        {info.label} ({info.n_layers} layers + output)")
        print(f"GPU layers   {resolved.n_gpu_layers} ({resolved.gpu_layers_note})")
        if resolved.tensor_split:
            print(f"split        {', '.join(f'{s:.3g}' for s in resolved.tensor_split)}")
        if plan is None:
            print("no GPU to plan for: everything runs on the CPU (try --assume-gpus 24GiB)")
        else:
            if line := tensor_split_line(plan):
                print(line)
            for d in plan.devices:
                mark = "" if d.fits else "   OVER BUDGET"
                print(f"  {d.describe()}{mark}")
            print(f"margin kept free per GPU: {human_bytes(plan.request.margin)}")
        print(f"parallel     {resolved.parallel_note}")
        print(f"             {sharing_note(resolved.n_seq_max, resolved.n_ctx_effective)}")
        print(f"             {cost_note(resolved.n_seq_max, info.n_vocab)}")
        if estimate:
            parts = ", ".join(f"{dev} {human_bytes(b)}" for dev, b in estimate.items())
            print(f"llama.cpp's own compute estimate (nothing allocated): {parts}")
    if plan is not None:
        for message in plan.messages:
            print(f"warning: {message}", file=sys.stderr)
    return 0 if plan is None or plan.fits else 3


def _compute_estimate(launch: ResolvedLaunch) -> dict[str, int] | None:
    try:
        sizes = estimate_buffers(launch)
    except EngineError:
        return None
    return {dev: kinds["compute"] for dev, kinds in sizes.items() if kinds.get("compute")}
