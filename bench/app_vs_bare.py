"""Benchmark for the foundation issue, side by side in one run:

1. tokens/s of one reply through the app's engine thread (signals included) vs bare
   llama-cpp-python (`Llama.create_completion(stream=True)`), same model, prompt, settings;
2. the longest GUI-thread stall while a reply streams into the real window (5 ms heartbeat);
3. time from process start to the window shown (`python -m kobold_gui`), over a few runs;
4. Stop latency in the middle of a long prompt: in the core, and through the window.

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m bench.app_vs_bare [--model PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("KOBOLD_GUI_HOME", "/tmp/kobold-gui-bench-home")

from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer
from PySide6.QtWidgets import QApplication

from kobold_gui.core.engine.local import LocalEngine
from kobold_gui.core.engine.prompt_template import ChatFormatter, Message
from kobold_gui.core.engine.types import SamplingParams
from kobold_gui.core.launch.options import LaunchConfig
from kobold_gui.core.launch.resolve import resolve_launch
from kobold_gui.core.models.files import default_model_path
from kobold_gui.core.models.gguf_info import read_gguf

PROMPT = [Message("user", "Write a long story about a dragon who learns to count.")]
CONFIG = LaunchConfig(contextsize=2048, threads=2)


class Heartbeat:
    """Measures gaps between 5 ms timer ticks on the GUI thread."""

    def __init__(self) -> None:
        self.clock = QElapsedTimer()
        self.timer = QTimer()
        self.timer.setInterval(5)
        self.timer.timeout.connect(self._tick)
        self.last = 0
        self.worst_ms = 0

    def start(self) -> None:
        self.clock.start()
        self.last = 0
        self.worst_ms = 0
        self.timer.start()

    def _tick(self) -> None:
        now = self.clock.elapsed()
        self.worst_ms = max(self.worst_ms, now - self.last)
        self.last = now

    def stop(self) -> int:
        self.timer.stop()
        return self.worst_ms


def wait(app: QApplication, condition, timeout: float = 120) -> None:  # type: ignore[no-untyped-def]
    """Run the event loop (sleeping between events, as the app does) until condition()."""
    end = time.perf_counter() + timeout
    loop = QEventLoop()
    poll = QTimer()
    poll.setInterval(20)
    poll.timeout.connect(lambda: (condition() or time.perf_counter() > end) and loop.quit())
    poll.start()
    if not condition():
        loop.exec()
    poll.stop()
    if not condition():
        raise TimeoutError


def chat_prompt(model: Path) -> str:
    """The prompt text the app sends, from the GGUF's template, without loading llama.cpp."""
    info = read_gguf(model)
    return ChatFormatter(info.chat_template, info.bos_token, info.eos_token).render(PROMPT)


def bare_tokens_per_s(model: Path, prompt: str, n: int) -> float:
    from llama_cpp import Llama

    from kobold_gui.core.llama.library import init_backend

    init_backend()  # a build with run-time backends loads none by itself: no model would load
    llm = Llama(
        str(model),
        n_ctx=CONFIG.contextsize,
        n_batch=512,
        n_ubatch=512,
        n_threads=CONFIG.threads,
        n_threads_batch=CONFIG.threads,
        verbose=False,
    )
    t0 = time.perf_counter()
    count = sum(1 for _ in llm.create_completion(prompt, max_tokens=n, temperature=0, stream=True))
    elapsed = time.perf_counter() - t0
    llm.close()
    return count / elapsed


def app_tokens_per_s(app: QApplication, model: Path, n: int) -> tuple[float, str]:
    from kobold_gui.ui.engine.controller import EngineController

    controller = EngineController()
    launch = resolve_launch(CONFIG, model, None, False)
    done: list[object] = []
    controller.loaded.connect(done.append)
    controller.load(launch)
    wait(app, lambda: done)
    prompt = controller.worker.engine.format_chat(PROMPT)
    finished: list[object] = []
    controller.replyFinished.connect(finished.append)
    t0 = time.perf_counter()
    controller.send(PROMPT, SamplingParams(max_tokens=n, temperature=0))
    wait(app, lambda: finished)
    elapsed = time.perf_counter() - t0
    result = finished[0]
    controller.shutdown()
    return result.generated_tokens / elapsed, prompt  # type: ignore[attr-defined]


def gui_stall(app: QApplication, model: Path, n: int) -> tuple[int, int, float]:
    from kobold_gui.ui.window.main_window import MainWindow

    window = MainWindow(initial_model=model, initial_config=CONFIG)
    window.show()
    wait(app, window.load_button.isEnabled)
    beat = Heartbeat()
    beat.start()
    window.load_model()
    wait(app, lambda: window.loaded is not None)
    load_stall = beat.stop()
    window.sampling = SamplingParams(max_tokens=n, temperature=0.8)
    finished: list[object] = []
    window.engine_controller.replyFinished.connect(finished.append)
    window.chat.input.setPlainText(PROMPT[0].content)
    beat.start()
    window.chat.send()
    wait(app, lambda: finished)
    stream_stall = beat.stop()
    rate = finished[0].tokens_per_s  # type: ignore[attr-defined]
    window.close()
    return load_stall, stream_stall, rate


def startup_times(runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        env = dict(os.environ, KOBOLD_GUI_T0=repr(time.time()))
        out = subprocess.run(
            [sys.executable, "-m", "kobold_gui"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        times.append(float(out.split("window shown after ")[1].split()[0]))
    return times


def stop_latency_core(model: Path) -> tuple[float, int, int]:
    engine = LocalEngine()
    engine.load(
        resolve_launch(
            LaunchConfig(contextsize=8192, blasbatchsize=4096, threads=2), model, None, False
        )
    )
    prompt = engine.tokenize("The quick brown fox jumps over the lazy dog. " * 600)
    cancel = threading.Event()
    stamp: list[float] = []

    def fire() -> None:
        stamp.append(time.perf_counter())
        cancel.set()

    threading.Timer(0.5, fire).start()
    engine.generate(prompt, SamplingParams(max_tokens=10), lambda _t: None, cancel)
    latency = time.perf_counter() - stamp[0]
    cached = len(engine._cached)
    engine.close()
    return latency, len(prompt), cached


def stop_latency_window(app: QApplication, model: Path) -> float:
    from kobold_gui.ui.window.main_window import MainWindow

    window = MainWindow(
        initial_model=model, initial_config=LaunchConfig(contextsize=8192, blasbatchsize=4096)
    )
    window.show()
    wait(app, window.load_button.isEnabled)
    window.load_model()
    wait(app, lambda: window.loaded is not None)
    finished: list[object] = []
    window.engine_controller.replyFinished.connect(finished.append)
    window.chat.input.setPlainText("The quick brown fox jumps over the lazy dog. " * 600)
    window.chat.send()
    end = time.perf_counter() + 0.5
    wait(app, lambda: time.perf_counter() > end)
    t0 = time.perf_counter()
    window.chat.stop_button.click()
    wait(app, lambda: finished)
    latency = time.perf_counter() - t0
    window.close()
    return latency


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=default_model_path())
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--one", choices=("app", "bare"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    app = QApplication.instance() or QApplication([])
    if args.one == "app":  # a single measurement in a fresh process
        rate, _prompt = app_tokens_per_s(app, args.model, args.tokens)
        print(f"RATE {rate}")
        return
    if args.one == "bare":  # nothing of the app's engine runs in this process
        print(f"RATE {bare_tokens_per_s(args.model, chat_prompt(args.model), args.tokens)}")
        return
    print(f"model: {args.model}  threads: {CONFIG.threads}  cpus: {os.cpu_count()}")

    # Each measurement in its own process (llama.cpp's OpenMP threads of one run would
    # otherwise keep spinning into the next), interleaved so drift hits both alike.
    bare, through_app = [], []
    for _ in range(args.repeats):
        for kind, into in (("app", through_app), ("bare", bare)):
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.app_vs_bare",
                    "--one",
                    kind,
                    "--model",
                    str(args.model),
                    "--tokens",
                    str(args.tokens),
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            into.append(float(out.split("RATE ")[1]))
    b, a = statistics.median(bare), statistics.median(through_app)
    print(
        f"\n1. tokens/s, {args.tokens}-token greedy reply, median of {args.repeats} "
        "(prompt processing included in both)"
    )
    print(f"   bare llama-cpp-python   {b:8.1f}   runs {[round(x, 1) for x in bare]}")
    print(f"   app engine thread       {a:8.1f}   runs {[round(x, 1) for x in through_app]}")
    print(f"   ratio app/bare          {a / b:8.3f}   (target >= 0.97)")

    load_stall, stream_stall, rate = gui_stall(app, args.model, 400)
    print("\n2. longest GUI-thread stall (5 ms heartbeat), real window")
    print(
        f"   during load {load_stall} ms, during a streamed reply {stream_stall} ms "
        f"({rate:.0f} tokens/s)   (target < 50 ms)"
    )
    tiny = os.environ.get("BENCH_FAST_MODEL")
    if tiny:
        load_stall, stream_stall, rate = gui_stall(app, Path(tiny), 3000)
        print(f"   fast model: during a streamed reply {stream_stall} ms ({rate:.0f} tokens/s)")

    times = startup_times(5)
    print("\n3. process start to window shown (python -m kobold_gui), 5 runs")
    print(f"   median {statistics.median(times):.2f} s, runs {[round(t, 2) for t in times]}")

    latency, n_prompt, cached = stop_latency_core(args.model)
    print("\n4. Stop during a long prompt")
    print(
        f"   core: {latency * 1000:.0f} ms after the flag "
        f"(prompt {n_prompt} tokens, {cached} were processed when stopped)"
    )
    print(
        f"   window: {stop_latency_window(app, args.model) * 1000:.0f} ms from the Stop click "
        "to the reply ended   (target < 200 ms)"
    )


if __name__ == "__main__":
    main()
