"""The model picker with the models other apps downloaded, and KoboldCPP settings files in the
window: imported (what was not applied is shown), saved, dropped on the window."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from kobold_gui.core.launch.options import LaunchConfig
from kobold_gui.core.models.roots import Places, default_roots
from kobold_gui.ui.models.model_panel import ModelPanel
from kobold_gui.ui.window.main_window import MainWindow
from tests.conftest import HANG_GUARD_MS
from tests.core.test_kcpps import DATA
from tests.core.test_model_scan import build_apps
from tests.ui.test_main_window import drop_file, load

APP_VARS = ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "OLLAMA_MODELS", "XDG_CACHE_HOME")


@pytest.fixture
def apps_home(tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user home with models in the five apps' folders; the window's own scan looks here."""
    home = tmp_path / "user"
    build_apps(home, tiny_model)
    monkeypatch.setenv("HOME", str(home))
    for var in (*APP_VARS, "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(var, raising=False)
    return home


def open_window(qtbot: QtBot, model: Path | None = None) -> MainWindow:
    window = MainWindow(initial_model=model)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.load_button.isEnabled(), timeout=HANG_GUARD_MS)
    return window


def picker_texts(panel: ModelPanel) -> list[str]:
    return [panel.recent.itemText(i) for i in range(panel.recent.count())]


def test_found_models_join_the_picker_with_their_source(
    qtbot: QtBot, apps_home: Path, default_model: Path
) -> None:
    panel = ModelPanel(scan_other_apps=False)
    qtbot.addWidget(panel)
    panel.set_recent([], default_model)
    with qtbot.waitSignal(panel.modelsFound, timeout=HANG_GUARD_MS):
        panel.scan_other_apps(default_roots(Places(apps_home, "linux", {})))
    texts = picker_texts(panel)
    assert texts[0] == f"Built-in: {default_model.name}" and texts[1] == ""  # a separator
    sources = [t.rsplit(" — ", 1)[-1] for t in texts[2:]]
    assert sources == ["LM Studio", "GPT4All", "Jan", "Hugging Face", "Ollama"]
    assert "5 model(s) of other apps in the list" in panel.found_label.text()
    index = texts.index("smollm2:135m, smollm2:latest — Ollama")
    with qtbot.waitSignal(panel.modelChosen, timeout=HANG_GUARD_MS) as chosen:
        panel.recent.activated.emit(index)
    assert chosen.args[0] == apps_home / ".ollama" / "models" / "blobs" / f"sha256-{'d' * 64}"


def test_window_loads_a_model_another_app_keeps(
    qtbot: QtBot, apps_home: Path, default_model: Path
) -> None:
    window = open_window(qtbot, default_model)
    qtbot.waitUntil(lambda: len(window.models.found) == 5, timeout=HANG_GUARD_MS)
    combo = window.models.recent
    index = next(i for i in range(combo.count()) if combo.itemText(i).endswith("— LM Studio"))
    with qtbot.waitSignal(window.models.infoReady, timeout=HANG_GUARD_MS):
        combo.setCurrentIndex(index)
        combo.activated.emit(index)
    where = window.models.current
    assert where is not None and where.is_relative_to(apps_home / ".lmstudio" / "models")
    with qtbot.waitSignal(window.engine_controller.loaded, timeout=HANG_GUARD_MS):
        qtbot.mouseClick(window.load_button, Qt.MouseButton.LeftButton)
    assert window.loaded is not None and window.loaded.info.path == where  # loaded in place
    window.close()


@pytest.fixture
def kcpps_file(tmp_path: Path, default_model: Path) -> Path:
    path = tmp_path / "koboldcpp-1.102.kcpps"
    shutil.copy(DATA / path.name, path)
    (tmp_path / default_model.name).symlink_to(default_model)
    return path


def test_import_applies_the_launch_and_shows_what_was_not_applied(
    qtbot: QtBot, apps_home: Path, tiny_model: Path, kcpps_file: Path
) -> None:
    window = open_window(qtbot, tiny_model)
    with qtbot.waitSignal(window.models.infoReady, timeout=HANG_GUARD_MS):
        window.models.kcpps.import_file(kcpps_file)
    config = window.launch_config()
    assert (config.contextsize, config.blasbatchsize, config.kvtype) == (16384, 1024, "q8_0")
    assert (config.tensor_split, config.maingpu, config.threads) == ((3.0, 1.0), 1, 6)
    assert window.models.current == kcpps_file.parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    notes = window.models.kcpps_notes
    assert notes.isVisible() and "Not applied:" in notes.text()
    for key in ("launch = true", "websearch = true", "sdmodel"):
        assert key in notes.text()
    assert "port" not in notes.text()  # it goes to the API server
    message = window.statusBar().currentMessage()
    assert "not applied: launch, websearch, sdmodel" in message
    assert "port to the API server" in message and window.server_panel.port.value() == 5002
    window.close()


def test_a_broken_settings_file_is_a_message_and_the_app_goes_on(
    qtbot: QtBot, apps_home: Path, tiny_model: Path, tmp_path: Path
) -> None:
    window = open_window(qtbot, tiny_model)
    bad = tmp_path / "bad.kcpps"
    bad.write_text("{ not json")
    with qtbot.waitSignal(window.models.kcpps.failed, timeout=HANG_GUARD_MS):
        window.models.kcpps.import_file(bad)
    assert "not a KoboldCPP settings file" in window.models.notice.text()
    assert window.models.current == tiny_model and window.load_button.isEnabled()
    window.close()


def test_save_as_kcpps_writes_the_current_launch(
    qtbot: QtBot, apps_home: Path, tiny_model: Path, tmp_path: Path
) -> None:
    window = open_window(qtbot, tiny_model)
    window.choose_model(tiny_model, LaunchConfig(contextsize=2048, kvtype="q4_0", threads=3))
    with qtbot.waitSignal(window.models.kcpps.saved, timeout=HANG_GUARD_MS):
        window.models.kcpps.save_file(tmp_path / "mine")
    data = json.loads((tmp_path / "mine.kcpps").read_text())
    assert (data["contextsize"], data["quantkv"], data["threads"]) == (2048, "q4_0", 3)
    assert data["model_param"] == str(tiny_model)
    assert "Saved" in window.models.kcpps_notes.text()
    window.close()


def test_dropping_a_kcpps_on_the_window_imports_it(
    qtbot: QtBot, apps_home: Path, tiny_model: Path, kcpps_file: Path
) -> None:
    window = open_window(qtbot, tiny_model)
    with qtbot.waitSignal(window.models.kcppsImported, timeout=HANG_GUARD_MS):
        drop_file(window, kcpps_file)
    assert window.launch_config().contextsize == 16384
    window.close()


def test_a_recent_ollama_model_keeps_its_name(
    qtbot: QtBot, apps_home: Path, default_model: Path
) -> None:
    blob = apps_home / ".ollama" / "models" / "blobs" / f"sha256-{'d' * 64}"
    panel = ModelPanel(scan_other_apps=False)
    qtbot.addWidget(panel)
    panel.set_recent([blob], default_model)
    with qtbot.waitSignal(panel.modelsFound, timeout=HANG_GUARD_MS):
        panel.scan_other_apps(default_roots(Places(apps_home, "linux", {})))
    texts = picker_texts(panel)
    assert texts[1] == "smollm2:135m, smollm2:latest — Ollama"  # recent, not "sha256-ddd…"
    assert texts.count(texts[1]) == 1


def test_a_settings_file_naming_a_missing_model_says_which_and_opens_one(
    qtbot: QtBot, apps_home: Path, tiny_model: Path, tmp_path: Path
) -> None:
    data = json.loads((DATA / "koboldcpp-1.117-cuda.kcpps").read_text())
    data["model_param"] = "C:\\Users\\me\\models\\gone.gguf"  # another computer's path
    path = tmp_path / "windows.kcpps"
    path.write_text(json.dumps(data))
    window = open_window(qtbot, tiny_model)
    with qtbot.waitSignal(window.models.kcpps.imported, timeout=HANG_GUARD_MS):
        window.models.kcpps.import_file(path)
    follow = window.models.kcpps.follow_up
    assert follow is not None and follow.message is not None
    qtbot.waitUntil(follow.message.isVisible, timeout=HANG_GUARD_MS)
    assert "gone.gguf" in follow.message.text() and "not there" in follow.message.text()
    assert window.launch_config().contextsize == 16384  # the other settings are applied
    assert follow.action_button is not None and follow.action_button.text() == "Open…"
    follow.action_button.click()
    assert follow.dialog is not None
    qtbot.waitUntil(follow.dialog.isVisible, timeout=HANG_GUARD_MS)
    other = tmp_path / "picked.gguf"
    shutil.copy(tiny_model, other)
    with qtbot.waitSignal(window.models.infoReady, timeout=HANG_GUARD_MS):
        follow.dialog.selectFile(str(other))
        follow.dialog.accept()
    assert window.models.current == other
    assert window.launch_config().contextsize == 16384 and window.load_button.isEnabled()
    window.close()


def test_importing_while_a_model_is_loaded_offers_reload(
    qtbot: QtBot, apps_home: Path, tiny_model: Path, tmp_path: Path
) -> None:
    data = json.loads((DATA / "koboldcpp-1.117-cpu-nofa.kcpps").read_text())
    data["model_param"] = str(tiny_model)
    data["quantkv"] = "f16"  # the tiny model's heads are too small for q4_0
    kcpps_file = tmp_path / "cpu.kcpps"
    kcpps_file.write_text(json.dumps(data))
    window = open_window(qtbot, tiny_model)
    load(qtbot, window)
    with qtbot.waitSignal(window.models.kcpps.imported, timeout=HANG_GUARD_MS):
        window.models.kcpps.import_file(kcpps_file)
    follow = window.models.kcpps.follow_up
    assert follow is not None and follow.message is not None
    qtbot.waitUntil(follow.message.isVisible, timeout=HANG_GUARD_MS)
    assert "loaded now still runs with the old ones" in follow.message.text()
    assert follow.action_button is not None and follow.action_button.text() == "Reload now"
    with qtbot.waitSignal(window.engine_controller.loaded, timeout=60_000):
        follow.action_button.click()
    assert window.loaded is not None and window.loaded.launch.config.contextsize == 4096
    window.close()


def test_an_ollama_model_goes_by_its_name_in_the_window(
    qtbot: QtBot, apps_home: Path, tiny_model: Path
) -> None:
    blob = apps_home / ".ollama" / "models" / "blobs" / f"sha256-{'d' * 64}"  # the tiny model
    name = "smollm2:135m, smollm2:latest"
    window = open_window(qtbot, blob)
    assert window.models.meta_labels["file"].text() == name  # the metadata panel
    assert window.models.recent.currentText().startswith(name)  # the picker, not sha256-ddd…
    with qtbot.waitSignal(window.engine_controller.loaded, timeout=HANG_GUARD_MS):
        qtbot.mouseClick(window.load_button, Qt.MouseButton.LeftButton)
        assert window.load_bar.progress.format().startswith(f"Loading {name}…")  # the load bar
    assert window.windowTitle().startswith(f"{name} — kobold-gui")
    assert window.load_bar.status.text().startswith(f"Loaded {name} in")
    assert "sha256" not in window.windowTitle() + window.load_bar.status.text()
    window.close()


def test_folders_a_scan_could_not_read_are_named(
    qtbot: QtBot, apps_home: Path, tmp_path: Path
) -> None:
    panel = ModelPanel(scan_other_apps=False)
    qtbot.addWidget(panel)
    roots = default_roots(Places(apps_home, "linux", {}))
    hub = apps_home / ".cache" / "huggingface" / "hub"
    shutil.rmtree(hub)  # found, then gone before the scan (a disk unplugged, say)
    with qtbot.waitSignal(panel.modelsFound, timeout=HANG_GUARD_MS):
        panel.scan_other_apps(roots)
    assert "4 model(s) of other apps" in panel.found_label.text()
    assert "1 folder could not be read" in panel.found_label.text()
    assert panel.found_label.toolTip() == f"{hub}: No such file or directory"
    # the models folder chosen with Folder… (kept in the settings) is gone too
    panel.set_folder(str(tmp_path / "unplugged"))
    lst = panel.folder_list
    qtbot.waitUntil(lambda: lst.count() == 2, timeout=HANG_GUARD_MS)
    assert lst.item(0).text() == "No .gguf files in this folder"
    assert lst.item(1).text().startswith("1 folder could not be read")
    assert lst.item(1).toolTip() == f"{tmp_path / 'unplugged'}: No such file or directory"
