"""Files shipped with the app (icon, .desktop file), found the same way from a source tree,
a wheel and a PyInstaller bundle."""

from __future__ import annotations

import sys
from importlib.resources import files
from pathlib import Path


def resource_path(name: str) -> Path:
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle and (Path(bundle) / "resources" / name).exists():
        return Path(bundle) / "resources" / name
    return Path(str(files("kobold_gui") / "resources" / name))
