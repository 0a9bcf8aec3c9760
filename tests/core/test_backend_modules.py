"""ggml's backend modules loaded at run time (core/llama/backends.py), on real files: the
installed build's own modules where it is a GGML_BACKEND_DL build, shared libraries compiled
here, and files that are no library at all. No mock of llama.cpp or of the dynamic loader."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kobold_gui.core.hardware.cpu import missing_cpu_features
from kobold_gui.core.llama.backends import (
    has_cpu_variants,
    installed_folder,
    is_loaded,
    load_backends,
    module_files,
    why_not_loaded,
)
from kobold_gui.core.llama.ggml import libggml, library_folder
from kobold_gui.core.llama.library import backend_info

DL_BUILD = has_cpu_variants(library_folder())
needs_dl_build = pytest.mark.skipif(
    not DL_BUILD, reason="llama-cpp-python here is not built with GGML_BACKEND_DL"
)
needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")


def compile_library(out: Path, source: str, *link: str) -> Path:
    src = out.with_suffix(".c")
    src.write_text(source)
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(out), str(src), *link], check=True)
    return out


def test_a_file_that_is_no_library_is_not_loaded_and_says_why(tmp_path: Path) -> None:
    bogus = tmp_path / "libggml-vulkan.so"
    bogus.write_bytes(b"\x7fELF? no: " + bytes(range(256)) * 16)
    (tmp_path / "libggml-base.so").write_bytes(b"")  # ggml's base library: not a backend
    (tmp_path / "notes.txt").write_text("")
    assert module_files(tmp_path) == [bogus]
    assert not is_loaded(bogus)
    reason = why_not_loaded(bogus)
    assert "ELF" in reason and str(tmp_path) not in reason


@needs_cc
def test_a_module_whose_driver_library_is_missing_names_it(tmp_path: Path) -> None:
    """As a CUDA module on a machine without the NVIDIA driver (libcuda.so.1)."""
    driver = compile_library(tmp_path / "libkgfakedriver.so", "int fake_driver(void){return 1;}")
    module = compile_library(
        tmp_path / "libggml-cuda.so",
        "int fake_driver(void); int ggml_backend_init(void){return fake_driver();}",
        f"-L{tmp_path}",
        "-lkgfakedriver",
        f"-Wl,-rpath,{tmp_path}",
    )
    driver.unlink()
    reason = why_not_loaded(module)
    assert reason.startswith("libkgfakedriver.so: cannot open shared object file"), reason
    assert not is_loaded(module)


@needs_cc
def test_a_library_that_is_no_ggml_backend_says_so(tmp_path: Path) -> None:
    module = compile_library(tmp_path / "libggml-blas.so", "int unrelated(void){return 0;}")
    assert why_not_loaded(module) == "not a ggml backend module (it has no ggml_backend_init)"
    assert not is_loaded(module), "the probe must give back what it opened"


def test_the_installed_build_is_found_without_importing_it() -> None:
    assert installed_folder() == library_folder()


@pytest.mark.skipif(DL_BUILD, reason="a GGML_BACKEND_DL build loads its modules")
def test_a_build_with_its_backends_linked_in_loads_nothing() -> None:
    loaded = load_backends(libggml(), library_folder())
    assert not loaded.dynamic and loaded.loaded == () and loaded.not_loaded == ()
    assert "CPU" in loaded.registered and loaded.cpu_variant == ""
    assert backend_info().backends.to_json()["cpu_variant"] == "built in"


LOAD_IN_A_FRESH_PROCESS = """
import ctypes, json, sys
from pathlib import Path
from kobold_gui.core.llama.backends import load_backends
from kobold_gui.core.llama.ggml import libggml
lib = libggml()
report = load_backends(lib, Path(sys.argv[1])).to_json()
lib.ggml_backend_dev_count.restype = ctypes.c_size_t
report["devices"] = lib.ggml_backend_dev_count()
print(json.dumps(report))
"""


@needs_dl_build
def test_ggml_loads_one_cpu_variant_and_the_others_say_why_not(tmp_path: Path) -> None:
    """The DL build's modules copied to a folder of their own, with a broken GPU module
    beside them; loaded in a fresh process (loading is once per process)."""
    for module in module_files(library_folder()):
        shutil.copy2(module, tmp_path / module.name)
    (tmp_path / "libggml-vulkan.so").write_bytes(b"no library" * 100)
    result = subprocess.run(
        [sys.executable, "-c", LOAD_IN_A_FRESH_PROCESS, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["dynamic"] and {"CPU", "RPC"} <= set(report["registered"])
    variant = report["cpu_variant"]
    assert sorted(report["loaded"]) == [f"libggml-cpu-{variant}.so", "libggml-rpc.so"]
    assert report["devices"] >= 1
    reasons = report["not_loaded"]
    assert "ELF" in reasons.pop("libggml-vulkan.so")
    other_variants = {m.name for m in tmp_path.glob("libggml-cpu-*.so")} - set(report["loaded"])
    assert set(reasons) == other_variants and len(other_variants) >= 5
    for reason in reasons.values():
        assert reason in (
            "this processor lacks instructions it is built for",
            f"{variant} suits this processor better",
        )
    assert f"{variant} suits this processor better" in reasons.values()


@needs_dl_build
def test_the_app_loads_the_installed_modules_before_asking_for_devices() -> None:
    info = backend_info()
    assert info.backends.dynamic and info.backends.cpu_variant
    assert f"libggml-cpu-{info.backends.cpu_variant}.so" in info.backends.loaded
    assert "CPU" in info.backends.registered
    assert missing_cpu_features() == []  # any processor runs one of the variants


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc/self/maps")
def test_ggml_is_the_one_that_libllama_loaded() -> None:
    """One libggml in the process: a second copy (the wheel's libggml.so beside the
    libggml.so.0 libllama loads) has a backend registry that model loads never see."""
    assert backend_info().backends.registered
    maps = Path("/proc/self/maps").read_text().splitlines()
    names = {line.split()[-1].rsplit("/", 1)[-1] for line in maps if line.strip()}
    assert len({n for n in names if n.startswith("libggml.")}) == 1, names
