"""Cancel latency of the batch-size sweep: Cancel pressed while a candidate's prompt is being
processed; the time until run_sweep returns (llama.cpp's abort callback ends the decode).

    .venv/bin/python -m bench.sweep_cancel [MODEL]
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from pathlib import Path

from kobold_gui.core.benchmark.results import candidates_from
from kobold_gui.core.benchmark.sweep import run_sweep
from kobold_gui.core.engine.local import LocalEngine
from kobold_gui.core.launch.options import LaunchConfig
from kobold_gui.core.launch.resolve import resolve_launch
from kobold_gui.core.models.files import default_model_path


def main() -> None:
    model = Path(sys.argv[1]) if len(sys.argv) > 1 else default_model_path()
    assert model is not None
    engine = LocalEngine()
    engine.load(resolve_launch(LaunchConfig(contextsize=8192), model, None, False))
    latencies = []
    for delay in (0.3, 0.6, 0.9, 1.2, 1.5):
        cancel = threading.Event()
        stamp: list[float] = []

        def fire(stamp: list[float] = stamp, cancel: threading.Event = cancel) -> None:
            stamp.append(time.perf_counter())
            cancel.set()

        timer = threading.Timer(delay, fire)
        timer.start()
        rows = run_sweep(engine, candidates_from([512, 4096]), 6000, 16, cancel=cancel)
        latencies.append((time.perf_counter() - stamp[0]) * 1000)
        print(
            f"cancel after {delay:.1f} s: sweep returned {latencies[-1]:.1f} ms later "
            f"({len(rows)} rows finished)"
        )
    print(f"median {statistics.median(latencies):.1f} ms, max {max(latencies):.1f} ms")
    engine.close()


if __name__ == "__main__":
    main()
