"""The keys of a KoboldCPP settings file (.kcpps / .kcppt) with KoboldCPP's defaults, and why
kobold-gui leaves each one it does not apply.

KoboldCPP saves the JSON of its parsed command line (the argparse namespace), so every option it
has becomes a key, with the argparse default where the user changed nothing. This table follows
koboldcpp.py's argparse definitions as of the 1.10x releases (option names and defaults read
from KoboldCPP's source; it is AGPL, so only the names and values are taken). The keys older
releases wrote (usecublas, blasbatchsize, flashattention, hordeconfig...) are listed in LEGACY.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class KcppsNote:
    """A key of a settings file that was not applied (or applied with a caveat), and why."""

    key: str
    value: Any
    reason: str
    applied: bool = False

    def describe(self) -> str:
        text = json.dumps(self.value, ensure_ascii=False, default=str)
        text = text if len(text) <= 60 else text[:57] + "..."
        state = "applied, but" if self.applied else "not applied:"
        return f"{self.key} = {text}: {state} {self.reason}"


SERVER = "server"
SERVED = "api server"  # applied to kobold-gui's API server (core/kcpps/files.py: server)
MEDIA = "media"
HORDE = "horde"
EXTRA_MODEL = "extra model"
ENGINE = "engine"
COMMAND = "command"
LAUNCH = "launch"  # applied by kobold-gui (see core/kcpps/files.py)

# Why a key with a value of its own is not applied, by group.
REASONS: dict[str, str] = {
    SERVER: "a KoboldCPP server feature kobold-gui's API server does not have",
    MEDIA: "image, speech or embeddings models are not part of kobold-gui",
    HORDE: "AI Horde worker settings are not part of kobold-gui",
    EXTRA_MODEL: "kobold-gui loads one GGUF model, without LoRA, projector or draft model",
    ENGINE: "kobold-gui has no such setting (llama.cpp's default is used)",
    COMMAND: "a one-off KoboldCPP command, not a launch setting",
}

# key -> (KoboldCPP's default, group). Threads default to the CPU count in KoboldCPP; -1 is
# its spelling of "automatic" (templates use it), which is what is written here.
# fmt: off
KEYS: dict[str, tuple[Any, str]] = {
    "model": ([], LAUNCH),
    "model_param": (None, LAUNCH),
    "port": (5001, SERVED),
    "port_param": (5001, SERVER),
    "host": ("", SERVED),
    "launch": (False, SERVER),
    "config": (None, COMMAND),
    "threads": (-1, LAUNCH),
    "usecuda": (None, LAUNCH),
    "usevulkan": (None, LAUNCH),
    "usecpu": (False, LAUNCH),
    "contextsize": (8192, LAUNCH),
    "gpulayers": (-1, LAUNCH),
    "tensor_split": (None, LAUNCH),
    "autofit": (False, ENGINE),
    "version": (False, COMMAND),
    "analyze": ("", COMMAND),
    "maingpu": (-1, LAUNCH),
    "batchsize": (512, LAUNCH),
    "blasthreads": (0, ENGINE),
    "splitmode": ("layer", LAUNCH),
    "nommq": (False, ENGINE),
    "lora": (None, EXTRA_MODEL),
    "loramult": (1.0, EXTRA_MODEL),
    "noshift": (False, ENGINE),
    "nofastforward": (False, ENGINE),
    "useswa": (False, ENGINE),
    "smartcache": (0, ENGINE),
    "ropeconfig": ([0.0, 10000.0], ENGINE),
    "overridenativecontext": (0, ENGINE),
    "usemmap": (False, ENGINE),
    "usemlock": (False, ENGINE),
    "noavx2": (False, ENGINE),
    "failsafe": (False, ENGINE),
    "debugmode": (0, SERVER),
    "onready": ("", SERVER),
    "benchmark": (None, COMMAND),
    "prompt": ("", COMMAND),
    "cli": (False, COMMAND),
    "genlimit": (0, SERVER),
    "multiuser": (1, SERVED),
    "multiplayer": (False, SERVER),
    "websearch": (False, SERVER),
    "remotetunnel": (False, SERVER),
    "highpriority": (False, ENGINE),
    "foreground": (False, SERVER),
    "preloadstory": ("", SERVER),
    "savedatafile": ("", SERVER),
    "quiet": (False, SERVER),
    "ssl": (None, SERVER),
    "nocertify": (False, SERVER),
    "mmproj": ("", EXTRA_MODEL),
    "mmprojcpu": (False, EXTRA_MODEL),
    "visionmaxres": (1024, EXTRA_MODEL),
    "draftmodel": ("", EXTRA_MODEL),
    "draftamount": (8, EXTRA_MODEL),
    "draftgpulayers": (999, EXTRA_MODEL),
    "draftgpusplit": (None, EXTRA_MODEL),
    "password": (None, SERVED),
    "ratelimit": (0, SERVER),
    "ignoremissing": (False, COMMAND),
    "chatcompletionsadapter": ("AutoGuess", SERVER),
    "jinja": (False, SERVER),
    "jinja_tools": (False, SERVER),
    "noflashattention": (False, LAUNCH),
    "lowvram": (False, LAUNCH),
    "quantkv": (0, LAUNCH),
    "smartcontext": (False, ENGINE),
    "unpack": ("", COMMAND),
    "exportconfig": ("", COMMAND),
    "exporttemplate": ("", COMMAND),
    "nomodel": (False, COMMAND),
    "moeexperts": (-1, ENGINE),
    "moecpu": (0, ENGINE),
    "defaultgenamt": (768, SERVER),
    "nobostoken": (False, ENGINE),
    "enableguidance": (False, ENGINE),
    "maxrequestsize": (32, SERVER),
    "overridekv": ("", ENGINE),
    "overridetensors": ("", ENGINE),
    "showgui": (False, COMMAND),
    "skiplauncher": (False, COMMAND),
    "singleinstance": (False, SERVER),
    "nopipelineparallel": (False, ENGINE),
    "gendefaults": ("", SERVER),
    "device": ("", ENGINE),
    "hordemodelname": ("", HORDE),
    "hordeworkername": ("", HORDE),
    "hordekey": ("", HORDE),
    "hordemaxctx": (0, HORDE),
    "hordegenlen": (0, HORDE),
    "sdmodel": ("", MEDIA),
    "sdthreads": (0, MEDIA),
    "sdclamped": (0, MEDIA),
    "sdclampedsoft": (0, MEDIA),
    "sdt5xxl": ("", MEDIA),
    "sdclip1": ("", MEDIA),
    "sdclip2": ("", MEDIA),
    "sdphotomaker": ("", MEDIA),
    "sdupscaler": ("", MEDIA),
    "sdflashattention": (False, MEDIA),
    "sdoffloadcpu": (False, MEDIA),
    "sdvaecpu": (False, MEDIA),
    "sdclipgpu": (False, MEDIA),
    "sdconvdirect": ("off", MEDIA),
    "sdvae": ("", MEDIA),
    "sdvaeauto": (False, MEDIA),
    "sdquant": (0, MEDIA),
    "sdlora": (None, MEDIA),
    "sdloramult": ([1.0], MEDIA),
    "sdtiledvae": (768, MEDIA),
    "whispermodel": ("", MEDIA),
    "ttsmodel": ("", MEDIA),
    "ttswavtokenizer": ("", MEDIA),
    "ttsgpu": (False, MEDIA),
    "ttsmaxlen": (4096, MEDIA),
    "ttsthreads": (0, MEDIA),
    "embeddingsmodel": ("", MEDIA),
    "embeddingsmaxctx": (0, MEDIA),
    "embeddingsgpu": (False, MEDIA),
    "admin": (False, SERVER),
    "adminpassword": (None, SERVER),
    "admindir": ("", SERVER),
    "istemplate": (False, COMMAND),
}
# fmt: on

# Keys of older releases, renamed or folded into others since; KoboldCPP converts them when it
# reads a file (convert_invalid_args, earlier convert_outdated_args). kobold-gui does the same
# for the ones that carry a launch setting (core/kcpps/files.py); the others are named if set.
LEGACY: dict[str, tuple[Any, str]] = {
    "usecublas": (None, LAUNCH),  # -> usecuda, with lowvram / rowsplit / GPU id inside
    "blasbatchsize": (512, LAUNCH),  # -> batchsize
    "flashattention": (False, LAUNCH),  # -> noflashattention, inverted
    "noblas": (False, LAUNCH),  # -> usecpu
    "useclblast": (None, LAUNCH),  # backend removed
    "nommap": (False, ENGINE),  # -> usemmap inverted (mmap is now off by default)
    "forceversion": (0, ENGINE),
    "promptlimit": (100, SERVER),  # -> genlimit
    "sdclipl": ("", MEDIA),  # -> sdclip1
    "sdclipg": ("", MEDIA),  # -> sdclip2
    "sdnotile": (False, MEDIA),  # -> sdtiledvae
    "sdconfig": (None, MEDIA),  # -> sdmodel, sdthreads, sdquant, sdclamped
    "hordeconfig": (None, HORDE),  # -> hordemodelname, hordegenlen, ...
}

# The spelling KoboldCPP reads today for a legacy key that carries a launch setting.
RENAMED: dict[str, str] = {"usecublas": "usecuda", "blasbatchsize": "batchsize"}

# KV cache types: quantkv was an index (0 f16, 1 q8, 2 q4; 3 bf16 later) and is now a name.
QUANTKV_NAMES: dict[str, str] = {"0": "f16", "1": "q8_0", "2": "q4_0", "3": "bf16"}
QUANTKV_INDEX: dict[str, int] = {"f16": 0, "q8_0": 1, "q4_0": 2}


# The defaults of other releases where they differ from KEYS (1.10x), read from each
# release's argparse (threads depend on the CPU and are left out). A file is compared with the
# defaults of the release that wrote it, so an untouched key is never named.
NEWEST = "1.117"
VERSION_DEFAULTS: dict[str, dict[str, Any]] = {
    "1.54": {"model": None, "contextsize": 2048, "gpulayers": 0, "multiuser": 0, "bantokens": None},
    "1.77": {
        "model": "",
        "contextsize": 4096,
        "chatcompletionsadapter": "",
        "sdlora": "",
        "sdloramult": 1.0,
    },
    "1.102": {},
    "1.117": {
        "contextsize": 12288,
        "autofitpadding": 1024,
        "defaultgenamt": 1536,
        "downloaddir": "",
        "draftamount": 4,
        "gendefaultsoverwrite": False,
        "jinja_kwargs": "",
        "jinjatemplate": "",
        "jinjathink": "default",
        "mcpfile": "",
        "multiuser": 10,
        "noswa": False,
        "allow_config_onready": False,
        "parallelrequests": 1,
        "quantkv": "f16",
        "reasoningeffort": "default",
        "swapadding": 0,
        "usemtp": False,
        "visionmaxtokens": -1,
        "visionmintokens": -1,
        "sdaudiovae": "",
        "sdclipdevice": None,
        "sdmaingpu": None,
        "sdtiledvae": 640,
        "sdvaedevice": None,
        "sdvramlimit": 0,
        "ttsdir": "",
        "musicllm": "",
        "musicembeddings": "",
        "musicdiffusion": "",
        "musicvae": "",
        "musiclowvram": False,
        "rpcmode": "disabled",
        "rpcport": 5551,
        "rpchost": "0.0.0.0",
        "rpcdevice": "",
        "rpctargets": "",
        "adminunloadtimeout": 0,
        "routermode": False,
        "reqtimeout": 600,
        "autoswapmode": False,
        "baseconfig": "",
        "testmemory": False,
    },
}
# Keys a release removed: 1.117 reads useswa as its inverse noswa, so a 1.117 file never
# gets it back.
VERSION_DROPPED: dict[str, tuple[str, ...]] = {"1.117": ("useswa",)}


def detect_version(raw: Mapping[str, Any]) -> str:
    """Which KoboldCPP release wrote a settings file, from its keys (the release whose keys
    and defaults the file is read against and written back in)."""
    if "noswa" in raw or "autofitpadding" in raw or isinstance(raw.get("quantkv"), str):
        return "1.117"
    if "usecuda" in raw or "batchsize" in raw or "noflashattention" in raw:
        return "1.102"
    if "usecpu" in raw or "flashattention" in raw or "quantkv" in raw:
        return "1.77"
    return "1.54"


def defaults_for(version: str) -> dict[str, Any]:
    """Every key's default in that release (legacy keys included, for older files)."""
    out = {key: value for key, (value, _group) in {**LEGACY, **KEYS}.items()}
    out.update(VERSION_DEFAULTS.get(version, {}))
    return out


def default_file(version: str = NEWEST) -> dict[str, Any]:
    """A settings file as that KoboldCPP release writes it when nothing was changed."""
    out = {key: value for key, (value, _group) in KEYS.items()}
    out.update(VERSION_DEFAULTS.get(version, {}))
    for key in VERSION_DROPPED.get(version, ()):
        out.pop(key, None)
    return {k: (list(v) if isinstance(v, list) else v) for k, v in out.items()}


def reason_for(key: str) -> str:
    """Why kobold-gui does not apply a key, for the "not applied" list."""
    entry = KEYS.get(key) or LEGACY.get(key)
    if entry is None:
        return "not a KoboldCPP setting kobold-gui knows"
    return REASONS.get(entry[1], "not applied")


def is_default(key: str, value: Any, version: str = "1.102") -> bool:
    """True when a key holds the default of the release that wrote the file, or an empty
    value, i.e. nothing was set."""
    if value is None or value is False or value == "" or value == []:
        return True
    defaults = defaults_for(version)
    return key in defaults and value == defaults[key]
