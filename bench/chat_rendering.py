"""Two chat measurements:
1. the longest GUI-thread stall while a 10k-token Markdown reply streams into the chat panel
   at 1000 tokens/s (33 tokens every 33 ms, as the engine thread delivers them), 5 ms heartbeat;
2. time to first token at turn 1 and turn 10 of a chat with the real engine: the KV cache is
   reused, so only each new message is processed.

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m bench.chat_rendering
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer
from PySide6.QtWidgets import QApplication

from kobold_gui.core.chats.store import ChatStore
from kobold_gui.core.engine.local import LocalEngine
from kobold_gui.core.engine.prompt_template import Message
from kobold_gui.core.engine.types import GenerationResult, SamplingParams
from kobold_gui.core.launch.options import LaunchConfig
from kobold_gui.core.launch.resolve import resolve_launch
from kobold_gui.core.models.files import default_model_path
from kobold_gui.ui.chat.chat_panel import ChatPanel
from kobold_gui.ui.chat.controller import ConversationController
from kobold_gui.ui.chat.conversation_list import ConversationList
from kobold_gui.ui.chat.sampling_panel import SamplingPanel

TOKEN = "word "  # ~1 token
LINE = "Some *markdown* with `code`, a [link](https://example.org) and a list:\n- item\n"


def stall_while_streaming(app: QApplication, tokens: int = 10_000) -> tuple[int, float]:
    panel = ChatPanel()
    panel.resize(800, 600)
    panel.show()
    panel.set_model_ready(True)
    folder = tempfile.mkdtemp()
    controller = ConversationController(
        panel, ConversationList(), SamplingPanel(), ChatStore(Path(folder)), print, str
    )
    worst, text = stream_reply(panel, controller, tokens)
    controller.shutdown()
    shutil.rmtree(folder, ignore_errors=True)
    return worst, len(text) / 1000


def stream_reply(
    panel: ChatPanel,
    controller: ConversationController,
    tokens: int,
    wrap: Callable[[Callable[..., None]], Callable[..., None]] = lambda f: f,
    settle_ms: int = 0,
) -> tuple[int, str]:
    """Send a message, then stream a Markdown reply of `tokens` tokens into the controller
    in 33 ms chunks (the engine thread's flush), as the app does; a 5 ms heartbeat on the
    GUI thread measures its longest stall. `wrap` times the controller's calls;
    `settle_ms` waits after the reply (its end-of-turn work). Returns the worst gap in ms
    and the reply's text."""
    panel.input.setPlainText("write a lot")
    panel.send()
    text = (LINE * (tokens * 5 // len(LINE) + 1))[: tokens * 5]
    chunks = [text[i : i + 33 * 5] for i in range(0, len(text), 33 * 5)]
    clock = QElapsedTimer()
    clock.start()
    last, worst = [0], [0]

    def beat() -> None:
        now = clock.elapsed()
        worst[0] = max(worst[0], now - last[0])
        last[0] = now

    heart = QTimer()
    heart.timeout.connect(beat)
    heart.start(5)
    loop = QEventLoop()
    feed = QTimer()

    def next_chunk() -> None:
        if chunks:
            wrap(controller.reply_text)(chunks.pop(0))
        else:
            feed.stop()
            wrap(controller.reply_finished)(
                GenerationResult(text, 1, 1, tokens, 0.1, 0.1, 10.0, "length")
            )
            if settle_ms:
                QTimer.singleShot(settle_ms, loop.quit)
            else:
                loop.quit()

    feed.timeout.connect(next_chunk)
    feed.start(33)
    loop.exec()
    heart.stop()
    return worst[0], text


def ttft_by_turn(turns: int = 10) -> list[GenerationResult]:
    model = default_model_path()
    assert model is not None
    engine = LocalEngine()
    engine.load(resolve_launch(LaunchConfig(contextsize=8192), model, None, False))
    history = [Message("system", "You are a helpful assistant.")]
    results = []
    for i in range(turns):
        history.append(
            Message(
                "user",
                f"Question {i + 1}: tell me one fact about the number "
                f"{i + 7}, in about thirty words, please.",
            )
        )
        r = engine.chat(history, SamplingParams(max_tokens=48, temperature=0), lambda _t: None)
        history.append(Message("assistant", r.text))
        results.append(r)
    engine.close()
    return results


def main() -> None:
    app = QApplication.instance() or QApplication([])
    worst, kchars = stall_while_streaming(app)  # type: ignore[arg-type]
    print(
        f"1. 10k-token Markdown reply ({kchars:.0f}k characters) streamed at 1000 tokens/s: "
        f"longest GUI-thread stall {worst} ms (target < 50 ms)"
    )
    results = ttft_by_turn()
    print("2. time to first token by turn (SmolLM2-135M, CPU), prompt tokens processed / total:")
    for i, r in enumerate(results, 1):
        print(
            f"   turn {i:2d}: TTFT {r.time_to_first_token_s * 1000:6.1f} ms, "
            f"processed {r.prompt_tokens_processed:4d} of {r.prompt_tokens:4d} tokens"
        )


if __name__ == "__main__":
    main()
