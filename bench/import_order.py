"""A load after importing one core module first, for each core module (issue 14's crash
depended on the import order). Used by tests/test_architecture.py on the CPU and by
bench/multi_gpu_plan.py on GPUs.

    python3 -m bench.import_order MODEL.gguf
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = sorted(
    ".".join(p.relative_to(ROOT).with_suffix("").parts)
    for p in (ROOT / "kobold_gui" / "core").rglob("*.py")
    if p.name != "__init__.py"
)

LOAD_AFTER = """
import importlib, sys
importlib.import_module(sys.argv[1])
from pathlib import Path
from kobold_gui.cli.common import open_inventory
from kobold_gui.core.llama.library import backend_info
from kobold_gui.core.hardware.probe import probe_hardware
from kobold_gui.core.engine.prompt_template import Message
from kobold_gui.core.engine.local import LocalEngine
from kobold_gui.core.engine.types import SamplingParams
from kobold_gui.core.models.gguf_info import read_gguf
from kobold_gui.core.launch.resolve import resolve_launch
from kobold_gui.core.launch.options import LaunchConfig

path = Path(sys.argv[2])
info = read_gguf(path)
backend = backend_info()
report = probe_hardware(open_inventory().snapshot()) if backend.gpu_offload else None
launch = resolve_launch(LaunchConfig(contextsize=512), path, info, backend.gpu_offload, report)
engine = LocalEngine()
engine.load(launch, info=info)
result = engine.chat([Message("user", "Hi")], SamplingParams(max_tokens=2), lambda _t: None)
assert result.generated_tokens > 0
print("ok")
"""


def run_all(model: Path) -> dict[str, str]:
    out = {}
    for name in CORE:
        r = subprocess.run(
            [sys.executable, "-X", "faulthandler", "-c", LOAD_AFTER, name, str(model)],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=ROOT,
        )
        ok = r.returncode == 0 and r.stdout.strip() == "ok"
        out[name] = "ok" if ok else f"rc {r.returncode}: {r.stderr[-600:]}"
    return out


if __name__ == "__main__":
    results = run_all(Path(sys.argv[1]))
    failed = {k: v for k, v in results.items() if v != "ok"}
    print(f"{len(results) - len(failed)} of {len(results)} loads ok; failed: {failed}")
    sys.exit(1 if failed else 0)
