"""Start-up time of the PyInstaller bundle vs `python -m kobold_gui` from the virtual
environment, side by side in one run, and the bundle's size.

    bash packaging/build.sh [--with-model] --dist /tmp/dist
    .venv/bin/python -m bench.bundle_startup /tmp/dist/kobold-gui/kobold-gui
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def shown_after(cmd: list[str], env: dict[str, str]) -> float:
    env = dict(env, KOBOLD_GUI_T0=repr(time.time()), QT_QPA_PLATFORM="offscreen")
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60).stdout
    return float(out.split("window shown after ")[1].split()[0])


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def main() -> None:
    exe = Path(sys.argv[1])
    home = Path("/tmp/kobold-gui-startup-home")
    bare = {"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    venv = dict(os.environ, KOBOLD_GUI_HOME=str(home / "venv-run"))
    bundle_times, venv_times = [], []
    for _ in range(5):  # interleaved
        bundle_times.append(shown_after([str(exe)], bare))
        venv_times.append(shown_after([sys.executable, "-m", "kobold_gui"], venv))
    b, v = statistics.median(bundle_times), statistics.median(venv_times)
    print(f"bundle size: {folder_size(exe.parent) / 2**20:.0f} MiB ({exe.parent})")
    print(f"window shown, median of 5: bundle {b:.2f} s  venv {v:.2f} s  ratio {b / v:.2f}")
    print(f"  bundle runs {[round(t, 2) for t in bundle_times]}")
    print(f"  venv runs   {[round(t, 2) for t in venv_times]}")


if __name__ == "__main__":
    main()
