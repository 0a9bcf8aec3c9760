"""The random kill drill, with the real app offscreen in subprocesses, as a user would meet it:

1. the app starts (its own KOBOLD_GUI_HOME), loads the model, is asked for a long story, and
   reports what the chat shows every 20 ms;
2. at a random moment of the reply it is killed (SIGKILL);
3. the chat files are read: readable? what part of the text that was shown was not saved,
   and for how long had it been on screen at the kill (target: nothing older than 1 s);
4. the app starts again: the chat must come back with the cut reply marked as cut; a new
   message is sent and answered; the files must then hold both turns, the cut reply intact.

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m bench.kill_drill [--runs 20] [--model PATH]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

STORY = "Tell me a long story about a lighthouse keeper and the sea."
POEM = "Now a short poem about the sea, please."


# -- the app, in a child process ------------------------------------------------------------
def _wait(condition: Callable[[], object], timeout: float = 120.0) -> None:
    from PySide6.QtWidgets import QApplication

    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError
        QApplication.processEvents()
        time.sleep(0.005)


def child(mode: str, model: Path) -> None:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from kobold_gui.core.engine.types import SamplingParams
    from kobold_gui.ui.window.main_window import MainWindow

    app = QApplication([])
    window = MainWindow(initial_model=model)
    window.show()
    _wait(window.load_button.isEnabled)
    window.load_model()
    _wait(lambda: window.loaded is not None)
    controller = window.conversations
    if mode == "first":
        window.sampling = SamplingParams(max_tokens=100_000)
        window.chat.input.setPlainText(STORY)
        window.chat.send()

        def report() -> None:
            conv = controller.conversation
            shown = len(conv.messages[-1].content) if conv.messages else 0
            print(f"SHOWN {time.time():.4f} {shown} {conv.id}", flush=True)

        timer = QTimer()
        timer.timeout.connect(report)
        timer.start(20)
        app.exec()  # until killed
        return
    _wait(lambda: controller.conversation.messages)  # the last chat is reopened
    cut_marked = "Reply cut off" in window.chat.transcript.toPlainText()
    print(f"REOPENED {controller.conversation.id} {cut_marked}", flush=True)
    window.sampling = SamplingParams(max_tokens=24)
    finished: list[object] = []
    window.engine_controller.replyFinished.connect(finished.append)
    window.chat.input.setPlainText(POEM)
    window.chat.send()
    _wait(lambda: finished)
    window.close()
    print("DONE", flush=True)


# -- the drill --------------------------------------------------------------------------------
def run_child(mode: str, home: Path, model: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, KOBOLD_GUI_HOME=str(home), QT_QPA_PLATFORM="offscreen")
    return subprocess.Popen(
        [sys.executable, "-m", "bench.kill_drill", "--child", mode, "--model", str(model)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def one_run(home: Path, model: Path, rng: random.Random) -> dict[str, object]:
    from kobold_gui.core.chats.store import ChatFileError, ChatStore

    proc = run_child("first", home, model)
    assert proc.stdout is not None
    shown: list[tuple[float, int]] = []
    conv_id = ""
    started = threading.Event()

    def read() -> None:
        nonlocal conv_id
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("SHOWN "):
                _, t, n, cid = line.split()
                shown.append((float(t), int(n)))
                conv_id = cid
                if int(n) > 0:
                    started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if not started.wait(180):
        proc.kill()
        return {"error": "the reply never started"}
    time.sleep(rng.uniform(0.2, 4.0))
    proc.send_signal(signal.SIGKILL)
    killed_at = time.time()
    proc.wait()
    reader.join(5)

    folder = home / "kobold_gui_data" / "chats"
    try:
        saved = ChatStore(folder).load(conv_id)
    except (ChatFileError, OSError) as e:
        return {"error": f"unreadable after the kill: {e}"}
    saved_len = len(saved.messages[-1].content) if len(saved.messages) >= 2 else 0
    last_shown = shown[-1][1]
    unsaved_since = next((t for t, n in shown if n > saved_len), None)
    age = killed_at - unsaved_since if unsaved_since is not None else 0.0
    before = [(m.role, m.content) for m in saved.messages]

    again = run_child("again", home, model)
    out, _ = again.communicate(timeout=300)
    reopened = next((line for line in out.splitlines() if line.startswith("REOPENED")), "")
    after = ChatStore(folder).load(conv_id)
    roles = [m.role for m in after.messages]
    continued = (
        "DONE" in out
        and reopened.split()[1:] == [conv_id, "True"]
        and roles == ["user", "assistant", "user", "assistant"]
        and [(m.role, m.content) for m in after.messages[:2]] == before
        and not after.messages[1].complete
        and after.messages[2].content == POEM
        and after.messages[3].complete
    )
    aside = list(folder.glob("*.aside"))
    return {
        "shown": last_shown,
        "saved": saved_len,
        "lost_chars": max(0, last_shown - saved_len),
        "lost_age_s": age,
        "continued": continued,
        "aside": len(aside),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--child", choices=("first", "again"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    from kobold_gui.core.models.files import default_model_path

    model = args.model or default_model_path()
    assert model is not None, "no model: pass --model"
    if args.child:
        child(args.child, model)
        return
    rng = random.Random(args.seed)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            r = one_run(Path(tmp) / f"run{i}", model, rng)
            results.append(r)
            print(f"run {i + 1:2d}: {r}", flush=True)
    good = [r for r in results if "error" not in r]
    print(f"model: {model.name}, runs: {len(results)}")
    print(
        f"unreadable or set-aside chat files after a kill: "
        f"{len(results) - len(good) + sum(int(r['aside']) for r in good)}"
    )  # type: ignore[call-overload]
    if good:
        ages = [float(r["lost_age_s"]) for r in good]  # type: ignore[arg-type]
        lost = [int(r["lost_chars"]) for r in good]  # type: ignore[call-overload]
        median = sorted(ages)[len(ages) // 2]
        print(
            f"text shown but not saved at the kill: at most {max(lost)} characters, on screen "
            f"for at most {max(ages):.2f} s (target < 1 s; median {median:.2f} s)"
        )
        print(
            f"reopened with the cut reply marked, continued with a new turn, cut reply intact: "
            f"{sum(bool(r['continued']) for r in good)} of {len(good)}"
        )


if __name__ == "__main__":
    main()
