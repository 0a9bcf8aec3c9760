"""Write a launch as a KoboldCPP settings file, faithful to the file it came from.

A file saved after an import is the imported file with only what the launch changed rewritten,
in the keys of the KoboldCPP release that wrote it (usecublas / usecuda, blasbatchsize /
batchsize, flashattention / noflashattention, quantkv as an index or a name, the main GPU as a
usecublas digit where there is no maingpu key): what kobold-gui did not apply, and what did not
change, stays as it was. A new file is written in the newest release's keys and defaults.
kobold-gui's own options ride along under one extra key (KoboldCPP ignores unknown keys).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kobold_gui.core.kcpps import keys
from kobold_gui.core.kcpps.files import (
    EXTRAS_KEY,
    OURS_ONLY,
    SUFFIXES,
    WRITTEN_KEYS,
    KcppsError,
    KcppsImport,
    import_settings,
)
from kobold_gui.core.kcpps.gpus import gpus_to_kobold
from kobold_gui.core.kcpps.keys import KcppsNote
from kobold_gui.core.launch.batching import stop_at_or_below
from kobold_gui.core.launch.options import OPTIONS_BY_NAME, LaunchConfig
from kobold_gui.core.paths import write_atomic

_GPU_OPTIONS = ("gpus", "tensor_split", "maingpu", "kvoffload", "splitmode")


def export_settings(
    config: LaunchConfig, model: Path | None, source: KcppsImport | None = None
) -> tuple[dict[str, Any], list[KcppsNote]]:
    """A KoboldCPP settings file for this launch (the imported `source` with what changed
    rewritten, or a new file), and what KoboldCPP will do differently."""
    if source is not None and source.raw:
        out = {k: v for k, v in source.raw.items() if k != EXTRAS_KEY}
        version = keys.detect_version(source.raw)
        before: LaunchConfig | None = import_settings(source.raw).config
        old_model = source.model
    else:
        out, version, before, old_model = keys.default_file(), keys.NEWEST, None, None
    notes: list[KcppsNote] = []

    def changed(*names: str) -> bool:
        return before is None or any(getattr(config, n) != getattr(before, n) for n in names)

    if model is not None and (before is None or Path(model) != old_model):
        _write_model(out, Path(model))
    if changed("threads"):
        out["threads"] = config.threads or -1
    for name in ("contextsize", "gpulayers"):
        if changed(name):
            out[name] = getattr(config, name)
    if changed("blasbatchsize"):
        notes += _write_batch(config, out)
    if changed("flashattention", "kvtype"):
        notes += _write_flash_and_kv(config, out, version)
    if changed(*_GPU_OPTIONS):
        notes += _write_backend(config, out, version, source)
    if changed("parallel"):
        notes += _write_parallel(config, out, version)
    for name in OURS_ONLY:
        if getattr(config, name) != OPTIONS_BY_NAME[name].default:
            notes.append(KcppsNote(name, getattr(config, name), "KoboldCPP has no such setting"))
    written = {k: out[k] for k in WRITTEN_KEYS if k in out}
    out[EXTRAS_KEY] = {"version": 2, "launch": config.to_dict(), "written": written}
    return out, notes


def _write_model(out: dict[str, Any], model: Path) -> None:
    path = str(model.absolute())
    out["model_param"] = path
    if isinstance(out.get("model"), str) and out["model"]:
        out["model"] = path  # 1.54 and 1.77 read --model when model_param is empty
    elif isinstance(out.get("model"), list) and out["model"]:
        out["model"] = [path]


def _write_batch(config: LaunchConfig, out: dict[str, Any]) -> list[KcppsNote]:
    batch = stop_at_or_below(config.blasbatchsize)  # KoboldCPP's parser knows only its stops
    names = [k for k in ("batchsize", "blasbatchsize") if k in out] or ["batchsize"]
    for key in names:
        out[key] = batch
    if batch == config.blasbatchsize:
        return []
    return [KcppsNote(names[0], config.blasbatchsize, f"KoboldCPP's sizes: saved as {batch}")]


def _write_parallel(config: LaunchConfig, out: dict[str, Any], version: str) -> list[KcppsNote]:
    """parallelrequests (KoboldCPP 1.117): how many generate at once; not multiuser.
    Automatic is saved as KoboldCPP's default, 1 (kobold-gui's own key keeps "auto"), without
    a note: it is what KoboldCPP does unless told otherwise."""
    if "parallelrequests" in out or version == keys.NEWEST:
        out["parallelrequests"] = config.parallel or 1
        return []
    if config.parallel > 1:
        why = "KoboldCPP before 1.117 has no parallel requests: it serves one at a time"
        return [KcppsNote("parallel", config.parallel, why)]
    return []


def _write_flash_and_kv(config: LaunchConfig, out: dict[str, Any], version: str) -> list[KcppsNote]:
    notes: list[KcppsNote] = []
    flash = config.flashattention != "off"
    has_flash_key = "noflashattention" in out or "flashattention" in out
    if "noflashattention" in out or version in ("1.102", keys.NEWEST):
        out["noflashattention"] = not flash
    if "flashattention" in out:
        out["flashattention"] = flash
    if config.flashattention == "auto" and version not in (keys.NEWEST,):
        notes.append(KcppsNote("flashattention", "auto", "KoboldCPP has no auto: saved as on"))
    if flash and not has_flash_key and version == "1.54":
        notes.append(KcppsNote("flashattention", "on", "KoboldCPP 1.54 has no flash attention"))
    if "quantkv" in out or version != "1.54":
        named = isinstance(out.get("quantkv"), str) or version == keys.NEWEST
        out["quantkv"] = config.kvtype if named else keys.QUANTKV_INDEX[config.kvtype]
    elif config.kvtype != "f16":
        why = "KoboldCPP 1.54 has no quantized KV cache: it uses f16"
        notes.append(KcppsNote("kvtype", config.kvtype, why))
    return notes


def _write_backend(
    config: LaunchConfig, out: dict[str, Any], version: str, source: KcppsImport | None
) -> list[KcppsNote]:
    """usecuda / usecublas, usecpu, tensor_split, maingpu, lowvram and splitmode."""
    raw: Mapping[str, Any] = source.raw if source is not None else {}
    if raw.get("usevulkan") not in (None, False):
        return []  # a Vulkan launch stays one: kobold-gui did not apply it
    was_cpu = bool(raw.get("usecpu") or raw.get("noblas")) and not _cuda_words(raw)
    cuda_keys = [k for k in ("usecuda", "usecublas") if k in out] or ["usecuda"]
    if config.gpus.indices == () or (config.gpulayers == 0 and was_cpu):
        for key in cuda_keys:
            out[key] = None
        if "usecpu" in out or version != "1.54":
            out["usecpu"] = True
        return []
    keep = [w for w in _cuda_words(raw) if w in ("mmq", "nommq")]
    if "usecublas" in cuda_keys and not keep:
        keep = ["mmq"]  # what KoboldCPP's launcher wrote for CUDA
    lowvram_key = "lowvram" in out or (version != "1.54" and version != "1.77")
    if lowvram_key:
        out["lowvram"] = config.kvoffload == "off"
    words = ["lowvram" if config.kvoffload == "off" and not lowvram_key else "normal"]
    had_digit = any(w.isdigit() for w in _cuda_words(raw))
    notes = gpus_to_kobold(config, out, words, "maingpu" in out or not raw, had_digit)
    words += keep
    if "splitmode" in out or version in ("1.102", keys.NEWEST):
        out["splitmode"] = "row" if config.splitmode == "row" else "layer"
    elif config.splitmode == "row":
        words.append("rowsplit")
    if config.splitmode in ("none", "tensor"):
        # KoboldCPP has neither: its key says layer; kobold-gui's own key keeps the mode.
        why = f"KoboldCPP has no '{config.splitmode}': saved as layer"
        notes.append(KcppsNote("splitmode", config.splitmode, why))
    for key in cuda_keys:
        out[key] = list(words)
    if "usecpu" in out:
        out["usecpu"] = False
    return notes


def _cuda_words(raw: Mapping[str, Any]) -> list[str]:
    cuda = raw.get("usecuda", raw.get("usecublas"))
    return [str(w) for w in cuda] if isinstance(cuda, list) else []


def write_kcpps(
    path: Path, config: LaunchConfig, model: Path | None, source: KcppsImport | None = None
) -> tuple[Path, list[KcppsNote]]:
    """Save a launch as a .kcpps (the suffix is added when missing, as KoboldCPP does), with
    the file mode other apps' files get (0666 less the umask)."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        path = path.with_name(path.name + ".kcpps")
    data, notes = export_settings(config, model, source)
    text = json.dumps(data, ensure_ascii=False)
    try:
        write_atomic(path, text, mode=0o666)  # a file KoboldCPP and users read
    except OSError as e:
        raise KcppsError(f"cannot write {path}: {e.strerror or e}") from None
    return path, notes
