"""Where kobold-gui keeps its files (platformdirs), and atomic writes for them."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import platformdirs

APP = "kobold-gui"


def _dir(env: str, default: str) -> Path:
    # KOBOLD_GUI_HOME moves every folder at once (tests, portable installs).
    home = os.environ.get("KOBOLD_GUI_HOME")
    path = Path(os.environ.get(env) or (Path(home) / env.lower() if home else default))
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_dir() -> Path:
    return _dir("KOBOLD_GUI_CONFIG", platformdirs.user_config_dir(APP, appauthor=False))


def data_dir() -> Path:
    return _dir("KOBOLD_GUI_DATA", platformdirs.user_data_dir(APP, appauthor=False))


def cache_dir() -> Path:
    return _dir("KOBOLD_GUI_CACHE", platformdirs.user_cache_dir(APP, appauthor=False))


def log_dir() -> Path:
    return _dir("KOBOLD_GUI_LOG", platformdirs.user_log_dir(APP, appauthor=False))


def write_atomic(path: Path, text: str, mode: int | None = None) -> None:
    """Write via a temporary file in the same folder, flushed and renamed over the target,
    so a crash leaves either the old file or the new one, never half of one. `mode`: the
    new file's mode before the umask (0o666 for a file other programs read, as any app's new
    file); by default the app's own 0o600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode is None:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    else:  # os.open with O_EXCL: the umask trims `mode` as for any new file
        tmp = tempfile.mktemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
