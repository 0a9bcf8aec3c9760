"""Find a model end to end: the window with no model, a search on the FAKE hub (127.0.0.1,
real huggingface_hub and httpx), a repository's files with their fit, a download that
becomes the window's model; a paused download resumed after the app restarts; a corrupt
one caught and not offered."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton, QTableWidget
from pytestqt.qtbot import QtBot

from kobold_gui.core.hub.fit import plan_fit, ram_bytes
from kobold_gui.core.hub.net import NetLimits
from kobold_gui.core.models.files import default_download_dir
from kobold_gui.core.models.gguf_info import read_gguf
from kobold_gui.ui.hub.find_dialog import FindModelDialog
from kobold_gui.ui.hub.hook import _window_hardware, open_find_model
from kobold_gui.ui.window.main_window import MainWindow
from tests.fakes.hub import FakeFile, FakeHub, FakeRepo

SMOL = "SmolLM2-135M-Instruct-Q4_1.gguf"
WAIT = 60_000


@pytest.fixture
def fake_hub(
    default_model: Path, split_model: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[FakeHub]:
    parts = {
        p.name: FakeFile(p, throttle_bps=6 << 20)
        for p in sorted(split_model.parent.glob("tiny-split-*.gguf"))
    }
    repos = [
        FakeRepo("bartowski/SmolLM2-135M-Instruct-GGUF", {SMOL: FakeFile(default_model)}, 900),
        FakeRepo("someone/tiny-split-GGUF", parts, downloads=50),
        FakeRepo("someone/broken-GGUF", {SMOL: FakeFile(default_model, corrupt=True)}, 5),
        FakeRepo("corp/gated-GGUF", {SMOL: FakeFile(default_model)}, 1, gated=True),
    ]
    monkeypatch.setenv("KOBOLD_GUI_DEFAULT_MODEL", str(tmp_path / "no-default.gguf"))
    with FakeHub(repos, token="hf_letmein") as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        yield hub


def _cell(table: QTableWidget, row: int, column: int) -> str:
    """A cell's text, "" while the table is being refilled (a wait may look in between)."""
    item = table.item(row, column)
    return item.text() if item is not None else ""


def _window(qtbot: QtBot) -> MainWindow:
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.backend is not None, timeout=WAIT)
    return window


def _open_repo(qtbot: QtBot, window: MainWindow, query: str) -> FindModelDialog:
    qtbot.mouseClick(window.models.find_button, Qt.MouseButton.LeftButton)
    dialog = window._find_model_dialog  # type: ignore[attr-defined]
    assert dialog.isVisible()
    dialog.query.setText(query)
    qtbot.mouseClick(dialog.search_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.results.rowCount() == 1, timeout=WAIT)
    dialog.results.selectRow(0)
    qtbot.waitUntil(lambda: dialog.files.rowCount() == 1, timeout=WAIT)
    qtbot.waitUntil(
        lambda: _cell(dialog.files, 0, 2) not in ("", "reading its header…"), timeout=WAIT
    )
    return dialog


def _download_button(dialog: FindModelDialog) -> QPushButton:
    button = dialog.files.cellWidget(0, 3)
    assert isinstance(button, QPushButton)
    return button


def test_first_run_find_download_and_the_model_is_ready(
    qtbot: QtBot, fake_hub: FakeHub, default_model: Path
) -> None:
    window = _window(qtbot)
    assert "Find a model" in window.models.notice.text()
    dialog = _open_repo(qtbot, window, "smollm2")
    assert dialog.results.item(0, 0).text() == "bartowski/SmolLM2-135M-Instruct-GGUF"
    # The fit shown from the range-read header is the plan for the same file on disk.
    gpu_offload, report = _window_hardware(window)
    local = plan_fit(read_gguf(default_model), gpu_offload, report, ram_bytes())
    assert dialog.files.item(0, 2).text() == local.summary
    assert "CPU only at 8k context" in local.summary  # no GPU backend here

    qtbot.mouseClick(_download_button(dialog), Qt.MouseButton.LeftButton)
    dest = default_download_dir() / "bartowski/SmolLM2-135M-Instruct-GGUF" / SMOL
    qtbot.waitUntil(lambda: window.models.info is not None, timeout=WAIT)
    assert window.models.current == dest
    assert dest.read_bytes() == default_model.read_bytes()
    assert window.launch.config().contextsize == 8192  # the plan's launch settings
    assert window.settings.models_folder == str(default_download_dir())
    qtbot.waitUntil(lambda: window.models.folder_list.count() == 1, timeout=WAIT)
    assert window.models.folder_list.item(0).text() == SMOL  # in the models list
    qtbot.waitUntil(lambda: window.load_button.isEnabled(), timeout=WAIT)
    assert "verified" in dialog.downloads.rows[0].stats.text()
    window.close()


def test_a_paused_split_download_resumes_after_a_restart(
    qtbot: QtBot, fake_hub: FakeHub, split_model: Path
) -> None:
    window = _window(qtbot)
    dialog = _open_repo(qtbot, window, "tiny-split")
    qtbot.mouseClick(_download_button(dialog), Qt.MouseButton.LeftButton)
    row = dialog.downloads.rows[0]
    qtbot.waitUntil(lambda: row.bar.value() >= 100, timeout=WAIT)
    qtbot.mouseClick(row.pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: row.stats.text().startswith("Paused"), timeout=WAIT)
    assert row.pause_button.text() == "Resume"
    paused_at = row.bar.value()
    qtbot.mouseClick(row.pause_button, Qt.MouseButton.LeftButton)  # Resume
    qtbot.waitUntil(lambda: row.bar.value() >= paused_at + 100, timeout=WAIT)
    assert row.running
    window.close()  # quit in the middle of the download; start again
    assert dialog.jobs.awaited == 0  # paused and waited for

    window = _window(qtbot)
    dialog = open_find_model(window)
    (row,) = dialog.downloads.rows
    assert row.stats.text().startswith("Paused: ")
    first = split_model.name
    folder = default_download_dir() / "someone/tiny-split-GGUF"
    have = (folder / (first + ".part")).stat().st_size
    qtbot.mouseClick(row.pause_button, Qt.MouseButton.LeftButton)  # Resume
    qtbot.waitUntil(lambda: window.models.info is not None, timeout=WAIT)
    assert window.models.current == folder / first
    assert fake_hub.ranges(first)[-1] == f"bytes={have}-"
    assert {t.file_index for t in window.models.info.tensors} == {0, 1, 2}
    for part in split_model.parent.glob("tiny-split-*.gguf"):
        assert (folder / part.name).read_bytes() == part.read_bytes()
    window.close()


def test_a_corrupt_download_is_reported_and_not_offered(qtbot: QtBot, fake_hub: FakeHub) -> None:
    window = _window(qtbot)
    dialog = _open_repo(qtbot, window, "broken")
    qtbot.mouseClick(_download_button(dialog), Qt.MouseButton.LeftButton)
    row = dialog.downloads.rows[0]
    qtbot.waitUntil(lambda: "arrived damaged" in row.stats.text(), timeout=WAIT)
    assert window.models.current is None
    assert not list(default_download_dir().rglob("*.gguf"))
    window.close()


def test_a_gated_repository_asks_for_a_token_and_works_once_saved(
    qtbot: QtBot, fake_hub: FakeHub
) -> None:
    window = _window(qtbot)
    dialog = _open_repo(qtbot, window, "gated")
    assert "gated: needs a token" in dialog.results.item(0, 0).text()
    assert "access token" in dialog.files.item(0, 2).text()
    dialog.token_row.edit.setText("hf_letmein")
    qtbot.mouseClick(dialog.token_row.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.files.rowCount() == 1, timeout=WAIT)
    qtbot.waitUntil(lambda: _cell(dialog.files, 0, 2).startswith("CPU only at 8k"), timeout=WAIT)
    qtbot.waitUntil(lambda: "Token saved in" in dialog.token_row.note.text(), timeout=WAIT)
    assert dialog.token_row.edit.text() == ""  # not left on screen
    assert dialog.token_row.store.load() == "hf_letmein"
    window.close()  # settings are written on closing
    assert "hf_letmein" not in window.store.path.read_text()


def test_a_search_on_a_hub_that_never_answers_is_cancelled_or_ends_in_a_message(
    qtbot: QtBot, fake_hub: FakeHub, tmp_path: Path
) -> None:
    fake_hub.stall = True  # it accepts the connection and says nothing
    dialog = FindModelDialog(
        tmp_path, lambda: (False, None), endpoint=fake_hub.endpoint, limits=NetLimits(read_s=600)
    )
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.query.setText("smol")
    qtbot.mouseClick(dialog.search_button, Qt.MouseButton.LeftButton)
    assert "Searching Hugging Face" in dialog.status.text()
    assert not dialog.search_button.isEnabled() and dialog.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: ("GET", "/api/models") in [(m, p) for m, p, _ in fake_hub.log])
    qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    assert dialog.status.text() == "Search cancelled."
    assert dialog.search_button.isEnabled() and not dialog.cancel_button.isEnabled()

    dialog.limits = NetLimits(read_s=0.5)  # the limit, short for the test
    qtbot.mouseClick(dialog.search_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "did not answer in time" in dialog.status.text(), timeout=WAIT)
    assert dialog.search_button.isEnabled() and dialog.results.rowCount() == 0

    fake_hub.stall = False  # the hub is back: Search works again
    qtbot.mouseClick(dialog.search_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.results.rowCount() == 1, timeout=WAIT)


QUIT_WHILE_SEARCHING = """
import sys
from pathlib import Path
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QWidget
from kobold_gui.core.hub.net import NetLimits
from kobold_gui.ui.hub.find_dialog import FindModelDialog

def run_window(app: QApplication, folder: Path) -> None:  # as ui/app.py runs the window
    window = QWidget()
    dialog = FindModelDialog(
        folder, lambda: (False, None), window, sys.argv[1], limits=NetLimits(read_s=600)
    )
    window.show()
    dialog.show()
    dialog.query.setText("smol")
    dialog.search()

    def close_when_asked() -> None:  # the test says so once the hub has the search
        if (folder / "close").exists():
            print("searching:", not dialog.search_button.isEnabled(), flush=True)
            window.close()
            app.quit()

    timer = QTimer()
    timer.timeout.connect(close_when_asked)
    timer.start(50)
    app.exec()

run_window(QApplication([]), Path(sys.argv[2]))
print("closed", flush=True)
"""


def test_the_app_quits_at_once_while_a_search_hangs(fake_hub: FakeHub, tmp_path: Path) -> None:
    """The window is closed while the search waits on a hub that never answers (its read
    limit ten minutes): the app ends anyway, no thread holds it."""
    fake_hub.stall = True
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "QT_QPA_PLATFORM": "offscreen"}
    script = textwrap.dedent(QUIT_WHILE_SEARCHING)
    app = subprocess.Popen(
        [sys.executable, "-c", script, fake_hub.endpoint, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        for _ in range(600):
            if ("GET", "/api/models") in [(m, p) for m, p, _ in fake_hub.log]:
                break
            assert app.poll() is None, app.communicate()
            time.sleep(0.1)
        (tmp_path / "close").touch()
        out, err = app.communicate(timeout=30)
    finally:
        app.kill()
    assert app.returncode == 0, err
    assert out.split() == ["searching:", "True", "closed"]
