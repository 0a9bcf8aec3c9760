"""The window on a 2-GPU machine, offscreen (PySide6 carried there; see issue 14's closing
note): load the 8B shape with the automatic split, then with a 3:1 split typed in the split
editor; NVML per GPU beside the plan, the window's texts, and screenshots, into OUT.

    QT_QPA_PLATFORM=offscreen python3 -m bench.window_gpu OUT /tmp/m8.gguf
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kobold_gui  # noqa: F401  (first, as the app's entry point: libllama before Qt and numpy)
from kobold_gui.core.hardware.nvml import GpuInventory


def main() -> None:
    from PySide6.QtCore import QEventLoop
    from PySide6.QtWidgets import QApplication

    app = QApplication([])
    from kobold_gui.ui.window.main_window import MainWindow

    out, model = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)

    def pump(seconds: float) -> None:
        end = time.time() + seconds
        while time.time() < end:
            app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
            time.sleep(0.01)

    def wait(condition: Callable[[], bool], limit: float = 180) -> bool:
        end = time.time() + limit
        while not condition() and time.time() < end:
            pump(0.05)
        return condition()

    inventory = GpuInventory()
    base = [g.memory_used for g in inventory.snapshot().gpus]  # before this process's CUDA
    window = MainWindow(initial_model=model, inventory=GpuInventory())
    window.resize(1366, 768)
    window.show()
    report: dict[str, Any] = {"ready": wait(window.load_button.isEnabled)}

    def measure(tag: str) -> None:
        pump(2.0)
        used = [g.memory_used for g in inventory.snapshot().gpus]
        launch = window.current_launch()
        plan = launch.plan if launch else None
        report[tag] = {
            "plan_mib": [round(d.total / 2**20) for d in plan.devices if d.is_gpu] if plan else [],
            "nvml_rise_mib": [round((u - b) / 2**20) for u, b in zip(used, base, strict=True)],
            "measured": window.split_editor.measured.text(),
            "status": window.load_status.text(),
            "batch_label": window.launch.batch.effective_label.text(),
            "summary": window.split_editor.summary.text(),
        }
        print(tag, json.dumps(report[tag]), flush=True)
        window.tabs.setCurrentIndex(0)
        window.tabs.widget(0).verticalScrollBar().setValue(10_000)  # type: ignore[attr-defined]
        pump(1.0)
        window.grab().save(str(out / f"plan-{tag}.png"))
        window.tabs.setCurrentIndex(2)
        pump(1.0)
        window.grab().save(str(out / f"gpus-{tag}.png"))

    window.load_button.click()
    report["loaded_auto"] = wait(lambda: window.loaded is not None)
    measure("auto")
    if len(window.split_editor.shares) < 2:  # one GPU (or none): nothing to split
        (out / "window_gpu.json").write_text(json.dumps(report, indent=1))
        window.close()
        return
    window.split_editor.auto_split.setChecked(False)  # then a 3:1 split, typed in the editor
    window.split_editor.shares[0].setValue(75.0)
    window.split_editor.shares[1].setValue(25.0)
    pump(1.0)
    window.unload_button.click()
    wait(lambda: window.loaded is None)
    pump(1.0)
    window.load_button.click()
    report["loaded_3_1"] = wait(lambda: window.loaded is not None)
    measure("3-1")  # NVML from the same base: the CUDA contexts stay after the unload
    (out / "window_gpu.json").write_text(json.dumps(report, indent=1))
    window.close()


if __name__ == "__main__":
    main()
