"""Export and import of a chat through file dialogs: a file name without '?' or '…', the
format the user picked in the dialog (with its extension added when they typed none), the
documents folder to start in, and the last folder used, remembered."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QStandardPaths
from PySide6.QtWidgets import QFileDialog, QWidget

from kobold_gui.core.chats.types import Conversation, import_openai
from kobold_gui.core.paths import config_dir, write_json_atomic

MARKDOWN_FILTER = "Markdown (*.md)"
JSON_FILTER = "JSON, OpenAI messages (*.json)"
_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f…]+')


def export_name(title: str) -> str:
    """A file name from a chat title that every system accepts."""
    name = _UNSAFE.sub(" ", title)
    name = " ".join(name.split()).strip(" .")[:80].rstrip(" .")
    return name or "chat"


def export_target(path: Path, name_filter: str) -> tuple[Path, str]:
    """The file to write and its format ('json' or 'md'): a typed .json or .md wins, else the
    filter chosen in the dialog decides, and its extension is added."""
    suffix = path.suffix.lower()
    if suffix in (".json", ".md"):
        return path, suffix[1:]
    kind = "json" if name_filter == JSON_FILTER else "md"
    return path.with_name(f"{path.name}.{kind}"), kind


def write_export(conv: Conversation, path: Path, kind: str) -> None:
    if kind == "json":
        text = json.dumps({"messages": conv.to_openai()}, indent=2, ensure_ascii=False)
    else:
        text = conv.to_markdown()
    path.write_text(text, encoding="utf-8")


def _state_file() -> Path:
    return config_dir() / "chat_files.json"


def last_folder() -> Path:
    """The folder of the last export or import, else the user's documents (or home)."""
    try:
        folder = Path(json.loads(_state_file().read_text(encoding="utf-8"))["folder"])
        if folder.is_dir():
            return folder
    except (OSError, ValueError, KeyError, TypeError):
        pass
    docs = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
    return Path(docs) if docs and Path(docs).is_dir() else Path.home()


def remember_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # only a convenience
        write_json_atomic(_state_file(), {"folder": str(folder)})


def file_dialog(
    parent: QWidget,
    title: str,
    name: str,
    filters: list[str],
    save: bool,
    on_chosen: Callable[[Path, str], object],
) -> QFileDialog:
    """A window-modal dialog that does not block, in the last folder used (else the
    documents folder); on_chosen(path, chosen filter) runs on accept."""
    dialog = QFileDialog(parent, title, str(last_folder()))
    dialog.setNameFilters(filters)
    dialog.setAcceptMode(
        QFileDialog.AcceptMode.AcceptSave if save else QFileDialog.AcceptMode.AcceptOpen
    )
    dialog.setFileMode(QFileDialog.FileMode.AnyFile if save else QFileDialog.FileMode.ExistingFile)
    if name:
        dialog.selectFile(name)

    def chosen(path: str) -> None:
        remember_folder(Path(path).parent)
        on_chosen(Path(path), dialog.selectedNameFilter())

    dialog.fileSelected.connect(chosen)
    dialog.finished.connect(dialog.deleteLater)
    dialog.open()
    return dialog


class ChatFiles:
    """The export and import dialogs of the chats list."""

    def __init__(self, parent: QWidget, say: Callable[[str], None]) -> None:
        self.parent, self.say = parent, say
        self.dialog: QFileDialog | None = None  # the one open now (tests drive it)

    def export_dialog(self, conv: Conversation) -> None:
        self.dialog = file_dialog(
            self.parent,
            "Export chat",
            export_name(conv.display_title()),
            [MARKDOWN_FILTER, JSON_FILTER],
            True,
            lambda path, name_filter: self.write(conv, path, name_filter),
        )

    def write(self, conv: Conversation, path: Path, name_filter: str | None = None) -> Path:
        target, kind = export_target(path, name_filter or MARKDOWN_FILTER)
        try:
            write_export(conv, target, kind)
        except OSError as e:
            self.say(f"Chat not exported: {e}")
        else:
            self.say(f"Chat exported to {target}")
        return target

    def import_dialog(self, on_read: Callable[[Conversation], None]) -> None:
        self.dialog = file_dialog(
            self.parent,
            "Import chat",
            "",
            ["JSON (*.json)"],
            False,
            lambda path, _filter: self._imported(path, on_read),
        )

    def _imported(self, path: Path, on_read: Callable[[Conversation], None]) -> None:
        conv = self.read(path)
        if conv is not None:
            on_read(conv)

    def read(self, path: Path) -> Conversation | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            messages = data["messages"] if isinstance(data, dict) else data
            return import_openai(messages, title=path.stem)
        except (OSError, ValueError, KeyError, TypeError) as e:
            self.say(f"Cannot import {path.name}: {e}")
            return None
