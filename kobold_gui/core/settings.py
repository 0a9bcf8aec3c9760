"""The app's saved settings: recent models (each with its last launch settings), the models
folder, the system prompt. One JSON file under the config folder, versioned and written
atomically; a corrupt or newer file is kept aside and reported, never overwritten."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kobold_gui.core.launch.options import ConfigError, LaunchConfig
from kobold_gui.core.paths import config_dir, write_json_atomic
from kobold_gui.core.remote.machines import SavedMachine, normalize
from kobold_gui.core.remote.probe import RpcError

SCHEMA_VERSION = 1
MAX_RECENT = 12


@dataclass
class RecentModel:
    path: str
    last_used: float
    launch: dict[str, Any] = field(default_factory=dict)


@dataclass
class AppSettings:
    recent: list[RecentModel] = field(default_factory=list)
    models_folder: str | None = None
    last_launch: dict[str, Any] = field(default_factory=dict)
    system_prompt: str = "You are a helpful assistant."
    # The window as the user left it: Qt's own geometry (hex) and the splitter's sizes.
    window_geometry: str = ""
    splitter_sizes: list[int] = field(default_factory=list)
    # Remote machines (Machines tab) and whether each is used for the model.
    machines: list[SavedMachine] = field(default_factory=list)
    # Share this machine: port, device, tensor cache (the address is not kept: every start
    # binds 127.0.0.1 until the user picks a network one again).
    share: dict[str, Any] = field(default_factory=dict)

    def remember(self, path: Path, config: LaunchConfig) -> None:
        """Put a model first in the recent list, with the settings it was launched with."""
        key = str(path)
        self.recent = [r for r in self.recent if r.path != key]
        self.recent.insert(0, RecentModel(key, time.time(), config.to_dict()))
        del self.recent[MAX_RECENT:]
        self.last_launch = config.to_dict()

    def launch_for(self, path: Path | None) -> LaunchConfig:
        """The model's own last settings, else the last used ones, else the defaults."""
        saved = next((r.launch for r in self.recent if path and r.path == str(path)), None)
        for candidate in (saved, self.last_launch):
            if candidate:
                try:
                    return LaunchConfig.from_mapping(candidate, strict=False)
                except ConfigError:
                    continue  # a value out of today's range: fall back
        return LaunchConfig()


def _parse_machines(raw: Any) -> list[SavedMachine]:
    """The saved machines; an entry that is not an address is dropped, not fatal."""
    out: list[SavedMachine] = []
    for item in raw if isinstance(raw, list) else []:
        try:
            endpoint = normalize(str(item["endpoint"]))
        except (RpcError, KeyError, TypeError):
            continue
        if all(m.endpoint != endpoint for m in out):
            out.append(SavedMachine(endpoint, bool(item.get("use", True))))
    return out


class SettingsStore:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or config_dir() / "settings.json"

    def load(self) -> tuple[AppSettings, str | None]:
        """The settings, and a warning for the user when the file had to be set aside."""
        if not self.path.exists():
            return AppSettings(), None
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(raw, dict):
                raise ValueError("not a JSON object")
            version = raw.get("version")
            if isinstance(version, int) and version > SCHEMA_VERSION:
                kept = self._set_aside(f"v{version}")
                return AppSettings(), (
                    f"The settings file was written by a newer kobold-gui (version {version}); "
                    f"it was kept as {kept.name} and defaults are used."
                )
            return self._parse(raw), None
        except (ValueError, TypeError, KeyError, OSError) as e:
            kept = self._set_aside("corrupt")
            return AppSettings(), (
                f"The settings file could not be read ({e}); it was kept as {kept.name} "
                "and defaults are used."
            )

    @staticmethod
    def _parse(raw: dict[str, Any]) -> AppSettings:
        recent = [
            RecentModel(str(r["path"]), float(r.get("last_used", 0)), dict(r.get("launch", {})))
            for r in raw.get("recent", [])
        ]
        folder = raw.get("models_folder")
        return AppSettings(
            recent=recent[:MAX_RECENT],
            models_folder=str(folder) if folder else None,
            last_launch=dict(raw.get("last_launch", {})),
            system_prompt=str(raw.get("system_prompt", AppSettings.system_prompt)),
            window_geometry=str(raw.get("window_geometry", "")),
            splitter_sizes=[int(x) for x in raw.get("splitter_sizes", [])][:2],
            machines=_parse_machines(raw.get("machines", [])),
            share=dict(raw.get("share", {})) if isinstance(raw.get("share"), dict) else {},
        )

    def _set_aside(self, tag: str) -> Path:
        target = self.path.with_name(f"{self.path.stem}.{tag}-{int(time.time())}.json")
        self.path.replace(target)
        return target

    def save(self, settings: AppSettings) -> None:
        data = {"version": SCHEMA_VERSION, **asdict(settings)}
        write_json_atomic(self.path, data)
