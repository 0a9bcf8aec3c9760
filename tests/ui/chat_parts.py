"""The chat's real parts without a window or an engine: the panel, the chats list, the
sampling panel and the controller over a ChatStore in a test folder. Text is given to the
controller's slots as the engine thread's signals would give it."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QWidget
from pytestqt.qtbot import QtBot

from kobold_gui.core.chats.store import ChatStore
from kobold_gui.core.engine.types import GenerationResult
from kobold_gui.ui.chat.chat_panel import ChatPanel
from kobold_gui.ui.chat.controller import ConversationController
from kobold_gui.ui.chat.conversation_list import ConversationList
from kobold_gui.ui.chat.sampling_panel import SamplingPanel

_alive: list[QWidget] = []


def chat_parts(qtbot: QtBot, folder: Path) -> ConversationController:
    host = QWidget()
    qtbot.addWidget(host)
    chat = ChatPanel(host)
    chat.set_model_ready(True)
    controller = ConversationController(
        chat,
        ConversationList(host),
        SamplingPanel(host),
        ChatStore(folder),
        say=lambda _text: None,
        default_system_prompt=lambda: "",
        parent=host,
    )
    host.destroyed.connect(lambda _obj=None: controller.writer.close())
    _alive.append(host)
    return controller


def finished(text: str, stop_reason: str = "eos") -> GenerationResult:
    return GenerationResult(text, 10, 10, 5, 0.1, 0.1, 0.5, stop_reason)
