"""KoboldCPP settings files (.kcpps, and .kcppt templates): read one into a launch (writing
one back is core/kcpps/writer.py).

A .kcpps is the JSON of KoboldCPP's parsed command line. Reading one converts old key names as
KoboldCPP does (usecublas -> usecuda, blasbatchsize -> batchsize, flashattention ->
noflashattention inverted, the lowvram / rowsplit / GPU-id words inside usecuda), applies what
maps to kobold-gui's launch options, and names every other key that holds a value of its own,
with the reason; a key at the default of the release that wrote the file (keys.detect_version)
is never named. Port, host, password and multiuser go to kobold-gui's API server (`server`).

KoboldCPP has two numbers for concurrent requests, kept apart here as there: `multiuser` is
how many may wait in the queue (the API server's setting), `parallelrequests` (1.117) how
many generate at once, which is kobold-gui's `parallel` launch option (a file's value is
applied as it is, KoboldCPP's default 1 included; files of older releases, which lack the
key and serve one at a time, leave kobold-gui's automatic choice).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kobold_gui.core.kcpps import keys
from kobold_gui.core.kcpps.gpus import gpus_from_kobold
from kobold_gui.core.kcpps.keys import KcppsNote
from kobold_gui.core.launch.options import OPTIONS, OPTIONS_BY_NAME, ConfigError, LaunchConfig

EXTRAS_KEY = "kobold_gui"
SUFFIXES = (".kcpps", ".kcppt")
MAX_FILE_BYTES = 16 << 20  # templates embed a few JSON files; a model is gigabytes
ROW_SPLIT_WARNING = (
    "row split is not possible on CUDA with the llama.cpp kobold-gui uses (a GPU load fails); "
    "use split mode layer"
)


class KcppsError(ConfigError):
    """A settings file that cannot be read at all (missing, not JSON, not an object)."""


@dataclass(frozen=True)
class KcppsImport:
    """What a settings file gives: the launch, the model file (when found) and the notes."""

    config: LaunchConfig
    model: Path | None
    notes: tuple[KcppsNote, ...] = ()
    template: bool = False
    applied: tuple[str, ...] = field(default=())  # kobold-gui option names set by the file
    raw: Mapping[str, Any] = field(default_factory=dict)  # the file as read, for a faithful save
    version: str = keys.NEWEST  # the KoboldCPP release whose keys the file has
    server: Mapping[str, Any] = field(default_factory=dict)  # port/host/password/multiuser set

    @property
    def missing_model(self) -> str | None:
        """The model file the settings name but that is not there (None: found or none)."""
        if self.model is not None:
            return None
        note = next((n for n in self.notes if n.reason == MODEL_NOT_FOUND), None)
        return str(note.value) if note is not None else None

    @property
    def not_applied(self) -> tuple[KcppsNote, ...]:
        return tuple(n for n in self.notes if not n.applied)

    def summary(self, name: str = "the settings file") -> str:
        """One line for a status bar."""
        skipped = [n.key for n in self.not_applied]
        warned = [n.key for n in self.notes if n.applied]
        text = f"Applied {len(self.applied)} setting(s) from {name}"
        if self.server:
            text += f" and {', '.join(self.server)} to the API server"
        if warned:
            text += f"; check {', '.join(warned)}"
        if skipped:
            text += f"; not applied: {', '.join(skipped)}"
        return text + "."


# Our options with a KoboldCPP spelling (core/launch/options.py's kobold_flag), under the
# key KoboldCPP writes today (--blasbatchsize is saved as "batchsize" since the option was
# renamed).
KOBOLD_KEY: dict[str, str] = {
    o.name: keys.RENAMED.get(o.kobold_flag.lstrip("-"), o.kobold_flag.lstrip("-"))
    for o in OPTIONS
    if o.kobold_flag
}
_NUMBERS = ("blasbatchsize", "contextsize", "gpulayers", "maingpu", "threads", "parallel")
# Options translated from KoboldCPP keys of another shape (below and in core/kcpps/gpus.py).
_TRANSLATED = ("flashattention", "tensor_split", "gpus", "splitmode", "kvtype", "kvoffload")
# Options KoboldCPP has no key for: only kobold-gui's extra key carries them.
OURS_ONLY: tuple[str, ...] = tuple(
    o.name for o in OPTIONS if o.name not in KOBOLD_KEY and o.name not in _TRANSLATED
)
# The keys a written file sets from a launch; a file whose keys still say what kobold-gui
# wrote (the extra key's "written") is read back from the extra key, which is finer (flash
# attention "auto", ...).
WRITTEN_KEYS = (
    "batchsize", "contextsize", "gpulayers", "maingpu", "threads", "tensor_split", "usecuda",
    "noflashattention", "quantkv", "lowvram", "splitmode", "blasbatchsize", "usecublas",
    "flashattention", "usecpu", "usevulkan", "parallelrequests",
)  # fmt: skip
MODEL_NOT_FOUND = "the model file was not found"
SERVER_KEYS = {
    "port": "port", "host": "host", "password": "password", "multiuser": "multiuser",
    "maxrequestsize": "maxrequestsize", "preloadstory": "preloadstory",
}  # fmt: skip
_CUDA_WORDS = {"normal", "lowvram", "mmq", "nommq", "rowsplit", "all"}


# -- reading ----------------------------------------------------------------------------------
def read_kcpps(path: Path) -> KcppsImport:
    """Read a .kcpps / .kcppt file. Raises KcppsError when it is not a settings file."""
    try:
        if Path(path).stat().st_size > MAX_FILE_BYTES:  # a model picked by mistake
            raise KcppsError(f"{Path(path).name} is not a KoboldCPP settings file: too large")
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise KcppsError(f"settings file not found: {path}") from None
    except OSError as e:
        raise KcppsError(f"cannot read the settings file {path}: {e.strerror or e}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise KcppsError(
            f"{Path(path).name} is not a KoboldCPP settings file: not JSON ({e.msg}, line "
            f"{e.lineno})"
        ) from None
    if not isinstance(data, dict):
        raise KcppsError(f"{Path(path).name} is not a KoboldCPP settings file: no JSON object")
    return import_settings(data, Path(path).parent)


def apply_config_file(path: Path, given_values: Mapping[str, Any]) -> KcppsImport:
    """--config FILE: the file's launch, with the options given on the command line on top
    (as KoboldCPP does). `given_values` maps option names to the values given (None = not
    given), as text or typed (given_options's)."""
    result = read_kcpps(path)
    given = {
        name: value
        for name, value in given_values.items()
        if value is not None and name in OPTIONS_BY_NAME
    }
    return replace(result, config=result.config.with_values(**given))


def import_settings(raw: Mapping[str, Any], base_dir: Path | None = None) -> KcppsImport:
    """The launch a KoboldCPP settings mapping describes; relative model paths are looked up
    beside the file (base_dir), then in the current folder."""
    data = convert_legacy(raw)
    version = keys.detect_version(raw)
    notes: list[KcppsNote] = []
    values: dict[str, Any] = {}
    for name in _NUMBERS:
        _apply_number(name, data, values, notes)
    notes += gpus_from_kobold(data, values)
    _apply_flash_and_kv(raw, data, values, notes)
    _apply_split_mode(raw, data, values, notes)
    _apply_backend(raw, data, values, notes)
    model = _model_path(raw, data, base_dir, notes)
    config = LaunchConfig.from_mapping(values)
    config = _with_extras(config, raw, model)
    handled = {k for k, (_v, group) in {**keys.KEYS, **keys.LEGACY}.items() if group == "launch"}
    handled |= {EXTRAS_KEY, "istemplate", "config", *SERVER_KEYS, KOBOLD_KEY["parallel"]}
    for key, value in raw.items():
        if key not in handled and not keys.is_default(key, value, version):
            notes.append(KcppsNote(key, value, keys.reason_for(key)))
    return KcppsImport(
        config=config,
        model=model,
        notes=tuple(notes),
        template=bool(raw.get("istemplate")),
        applied=tuple(sorted(values)),
        raw=dict(raw),
        version=version,
        server=_server_settings(raw, version, notes),
    )


def _server_settings(
    raw: Mapping[str, Any], version: str, notes: list[KcppsNote]
) -> dict[str, Any]:
    """Port, host, password, multiuser, request size and preloaded story the file sets, for
    kobold-gui's API server (which
    queues as KoboldCPP does: multiuser 0 = busy answers 503, N = N requests at once)."""
    out: dict[str, Any] = {}
    for key in SERVER_KEYS:
        value = raw.get(key)
        if keys.is_default(key, value, version):
            continue
        if key in ("host", "password", "preloadstory"):
            ok = isinstance(value, str)
        else:
            ok = type(value) is int or (key == "maxrequestsize" and type(value) is float)
        if key == "port" and ok and not 0 < int(value or 0) < 65536:
            ok = False
        if ok:
            out[key] = value
        else:
            notes.append(KcppsNote(key, value, "not a valid value for the API server"))
    return out


def convert_legacy(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Old key names to today's, as KoboldCPP converts them when it reads a file."""
    data = dict(raw)
    if "usecuda" not in data and data.get("usecublas") is not None:
        data["usecuda"] = data["usecublas"]
    cuda = data.get("usecuda")
    words = [str(w) for w in cuda] if isinstance(cuda, list) else []
    if "lowvram" in words:
        data["lowvram"] = True
    if "rowsplit" in words:
        data["splitmode"] = "row"
    if "batchsize" not in data and data.get("blasbatchsize") is not None:
        data["batchsize"] = data["blasbatchsize"]
    if "flashattention" in data and "noflashattention" not in data:
        data["noflashattention"] = not data["flashattention"]
    if data.get("noblas"):
        data["usecpu"] = True
    if not data.get("model_param") and data.get("model"):
        model = data["model"]
        data["model_param"] = model[0] if isinstance(model, list) else model
    return data


def _note_key(data: Mapping[str, Any], *candidates: str) -> str:
    """The key the user's file has (the old spelling when it is an old file)."""
    return next((k for k in candidates if k in data), candidates[0])


def _apply_number(
    name: str, data: Mapping[str, Any], values: dict[str, Any], notes: list[KcppsNote]
) -> None:
    key = KOBOLD_KEY[name]
    value = data.get(key)
    if value is None:
        return
    shown = _note_key(data, "blasbatchsize", key) if key == "batchsize" else key
    if name == "threads" and isinstance(value, int) and value < 0:
        value = 0  # -1: KoboldCPP picks the thread count, as 0 does here
    if name == "blasbatchsize" and value == -1:
        notes.append(KcppsNote(shown, value, "batched prompt processing cannot be turned off"))
        return
    try:
        values[name] = OPTIONS_BY_NAME[name].parse(value)
    except ConfigError as e:
        notes.append(KcppsNote(shown, value, f"{e}; the default is kept"))


def _apply_flash_and_kv(
    raw: Mapping[str, Any], data: Mapping[str, Any], values: dict[str, Any], notes: list[KcppsNote]
) -> None:
    no_flash = data.get("noflashattention")
    if no_flash is not None:
        values["flashattention"] = "off" if no_flash else "on"
    if data.get("lowvram"):
        values["kvoffload"] = "off"
    quant = data.get("quantkv")
    if quant in (None, ""):
        return
    kv = keys.QUANTKV_NAMES.get(str(quant), str(quant).lower())
    if kv not in OPTIONS_BY_NAME["kvtype"].choices:  # type: ignore[operator]
        notes.append(KcppsNote("quantkv", quant, f"KV cache type {kv} is not available here"))
        return
    values["kvtype"] = kv
    if kv != "f16" and values.get("flashattention") == "off":
        values["flashattention"] = "auto"
        key = _note_key(raw, "noflashattention", "flashattention")
        notes.append(
            KcppsNote(
                key,
                raw.get(key, no_flash),
                "a quantized KV cache needs flash attention here, so it is set to auto",
            )
        )


def _apply_split_mode(
    raw: Mapping[str, Any], data: Mapping[str, Any], values: dict[str, Any], notes: list[KcppsNote]
) -> None:
    mode = data.get("splitmode")
    if mode in (None, ""):
        return
    key = _note_key(raw, "splitmode", "usecuda", "usecublas")
    shown = raw.get(key, mode)
    if mode == "row":
        values["splitmode"] = "row"
        notes.append(KcppsNote(key, shown, ROW_SPLIT_WARNING, applied=True))
    elif mode == "layer":
        values["splitmode"] = "layer"
    else:
        notes.append(KcppsNote(key, shown, f"split mode {mode!r} is not available here"))


def _apply_backend(
    raw: Mapping[str, Any], data: Mapping[str, Any], values: dict[str, Any], notes: list[KcppsNote]
) -> None:
    if data.get("usecpu") and not data.get("usecuda"):
        values["gpulayers"] = 0
        key = _note_key(raw, "usecpu", "noblas")
        notes.append(KcppsNote(key, True, "CPU only: GPU layers set to 0", applied=True))
    cuda = data.get("usecuda")
    if isinstance(cuda, list):
        odd = [w for w in map(str, cuda) if w not in _CUDA_WORDS and not w.isdigit()]
        if odd:
            key = _note_key(raw, "usecuda", "usecublas")
            notes.append(KcppsNote(key, odd, "unknown words in the CUDA option"))
    for key in ("usevulkan", "useclblast"):
        if data.get(key) is not None and data.get(key) is not False:
            reason = (
                "kobold-gui runs on the llama.cpp build it has (CUDA or CPU); "
                "this backend and its device numbers are not used"
            )
            notes.append(KcppsNote(key, data[key], reason))


def _model_path(
    raw: Mapping[str, Any], data: Mapping[str, Any], base_dir: Path | None, notes: list[KcppsNote]
) -> Path | None:
    value = data.get("model_param")
    if not value:
        return None
    key = "model_param" if raw.get("model_param") else "model"
    text = str(value).strip()
    if text.startswith(("http://", "https://")):
        notes.append(KcppsNote(key, text, "a download link: download the file, then open it here"))
        return None
    path = Path(text).expanduser()
    candidates = [path] if path.is_absolute() else [(base_dir or Path.cwd()) / path, path]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.absolute()
    notes.append(KcppsNote(key, text, MODEL_NOT_FOUND))
    return None


def _with_extras(config: LaunchConfig, raw: Mapping[str, Any], model: Path | None) -> LaunchConfig:
    """kobold-gui's own options from its extra key: all of them while KoboldCPP's keys still
    say what kobold-gui wrote, else only those KoboldCPP has no key for."""
    extras = raw.get(EXTRAS_KEY)
    launch = extras.get("launch") if isinstance(extras, dict) else None
    if not isinstance(launch, dict):
        return config
    try:
        ours = LaunchConfig.from_mapping(launch, strict=False)
    except ConfigError:
        return config
    written = extras.get("written") if isinstance(extras, dict) else None
    if isinstance(written, dict) and all(raw.get(k) == v for k, v in written.items()):
        return ours
    kept = {name: getattr(ours, name) for name in OURS_ONLY}
    # KoboldCPP has no tensor split (llama.cpp's LLAMA_SPLIT_MODE_TENSOR): its files say
    # "layer" for it (core/kcpps/writer.py), so the extra key's "tensor" survives an edit in
    # KoboldCPP that left the split mode at layer; a KoboldCPP file's own "tensor" is not
    # KoboldCPP's and is named, not applied (_apply_split_mode).
    if ours.splitmode == "tensor" and config.splitmode == "layer":
        kept["splitmode"] = "tensor"
    return config.with_values(**kept)
