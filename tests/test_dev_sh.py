"""tools/dev.sh decides from the build's name (version and hash of the flags) whether .venv
holds the right llama-cpp-python: another HOME or XDG_CACHE_HOME than the first run's must
not start a 40-minute build. Run on a copy of the script in a temporary root with a FAKE
python (it only records its calls), so nothing is ever built or installed."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    root = tmp_path / "clone"
    (root / "tools").mkdir(parents=True)
    shutil.copy(ROOT / "tools" / "dev.sh", root / "tools" / "dev.sh")
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    bin_dir = root / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    fake = bin_dir / "python"  # FAKE: records what dev.sh asks of the venv's python
    fake.write_text(f'#!/bin/sh\necho "$@" >> {root / "python-calls"}\n')
    fake.chmod(0o755)
    want = hashlib.sha256((root / "pyproject.toml").read_bytes()).hexdigest()[:16]
    (root / ".venv" / ".project-stamp").write_text(want + "\n")
    path = tmp_path / "path"  # FAKE dpkg-query: Qt's libraries are there (no apt-get)
    path.mkdir()
    (path / "dpkg-query").write_text("#!/bin/sh\necho 'install ok installed'\n")
    (path / "dpkg-query").chmod(0o755)
    return root


def dev_sh(root: Path, command: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KOBOLD_GUI_", "CMAKE_"))}
    clean.pop("XDG_CACHE_HOME", None)
    clean["PATH"] = f"{root.parent / 'path'}:{clean['PATH']}"
    return subprocess.run(
        ["bash", str(root / "tools" / "dev.sh"), command],
        env={**clean, "HOME": str(home), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_another_home_does_not_rebuild_what_venv_holds(clone: Path, tmp_path: Path) -> None:
    first = dev_sh(clone, "needs-build", tmp_path / "first-home").stdout
    assert first.startswith("build: llama-cpp-python-")  # nothing installed yet
    build = first.split()[1]
    # The stamp as the first run wrote it: the wheel folder under the first run's HOME.
    stamp = clone / ".venv" / ".llama-build"
    stamp.write_text(f"{tmp_path}/first-home/.cache/kobold-gui/wheels/{build}\n")
    for env in ({}, {"XDG_CACHE_HOME": str(tmp_path / "xdg")}):
        out = dev_sh(clone, "needs-build", tmp_path / "other-home", **env).stdout
        assert out.strip() == f"no: .venv holds {build}"
    dev_sh(
        clone,
        "setup",
        tmp_path / "other-home",
        XDG_CACHE_HOME=str(tmp_path / "xdg"),
        KOBOLD_GUI_BACKENDS="cpu",  # no GPU module: those are built apart (not tested here)
    )
    assert not (clone / "python-calls").exists()  # no pip wheel, no pip install
    # Other flags are another build: that one is needed.
    other = dev_sh(clone, "needs-build", tmp_path / "other-home", CMAKE_ARGS="-DGGML_X=ON")
    assert other.stdout.startswith("build: ") and build not in other.stdout
    stamp.write_text(build + "\n")  # the stamp setup writes now: the build's name
    assert dev_sh(clone, "needs-build", tmp_path / "x").stdout.startswith("no: ")
