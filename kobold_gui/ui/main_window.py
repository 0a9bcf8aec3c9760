"""The main window: composes the model, launch, load and chat panels, and wires them to the
engine thread. It holds no inference logic of its own."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from kobold_gui import __version__
from kobold_gui.core.chat_store import (
    ChatStore,
)
from kobold_gui.core.backend import backend_info
from kobold_gui.core.engine_types import BackendInfo, GenerationResult, LoadedModel, SamplingParams
from kobold_gui.core.ggml_devices import BackendDevice, backend_devices
from kobold_gui.core.gguf_info import GGUFInfo, human_bytes
from kobold_gui.core.gpus import GpuInventory, Inventory
from kobold_gui.core.hardware import hardware_report
from kobold_gui.core.launch import ResolvedLaunch, resolve_launch
from kobold_gui.core.llama_buffers import device_totals, parse_buffer_sizes
from kobold_gui.core.model_files import default_model_path
from kobold_gui.core.options import ConfigError, LaunchConfig
from kobold_gui.core.settings import SettingsStore
from kobold_gui.core.sweep import SweepRow, candidates_from, load_sweep, save_sweep, sweep_identity
from kobold_gui.ui.background import LatestJob, wait_for_background_jobs
from kobold_gui.ui.benchmark_panel import BenchmarkPanel
from kobold_gui.ui.chat_panel import ChatPanel
from kobold_gui.ui.conversation_controller import ConversationController
from kobold_gui.ui.conversation_list import ConversationList
from kobold_gui.ui.engine_thread import EngineController
from kobold_gui.ui.gpu_panel import GpuPanel
from kobold_gui.ui.gpu_poller import GpuMonitor
from kobold_gui.ui.launch_panel import LaunchPanel
from kobold_gui.ui.model_panel import ModelPanel
from kobold_gui.ui.sampling_panel import SamplingPanel
from kobold_gui.ui.server_panel import ServerPanel
from kobold_gui.ui.split_editor import SplitEditor

CUDA_HINT = "For NVIDIA GPUs: KOBOLD_GUI_BACKEND=cuda bash tools/dev.sh setup (see README)."


def _measured_text(loaded: LoadedModel) -> str:
    """llama.cpp's own buffer sizes per device, from its load log."""
    totals = device_totals(parse_buffer_sizes(loaded.log))
    return ", ".join(f"{name} {human_bytes(size)}" for name, size in totals.items()) or "—"


def _detect_backend() -> tuple[BackendInfo, list[BackendDevice]]:
    return backend_info(), backend_devices()


class MainWindow(QMainWindow):
    def __init__(
        self,
        store: SettingsStore | None = None,
        initial_model: Path | None = None,
        initial_config: LaunchConfig | None = None,
        inventory: GpuInventory | None = None,
    ) -> None:
        super().__init__()
        self.setWindowTitle(f"kobold-gui {__version__}")
        self.setAcceptDrops(True)
        self.resize(1180, 760)
        self.store = store or SettingsStore()
        self.settings, settings_warning = self.store.load()
        self.backend: BackendInfo | None = None
        self.devices: list[BackendDevice] = []
        self.inventory = Inventory()
        self.loaded: LoadedModel | None = None
        self.loading = False
        self._closing = False
        self.engine = EngineController(self)

        self.models = ModelPanel()
        self.launch = LaunchPanel()
        self.chat = ChatPanel()
        self.gpus = GpuPanel()
        self.split_editor = SplitEditor()
        self.benchmark = BenchmarkPanel()
        self.sweeping = False
        self.chats = ChatStore()
        self.chat_list = ConversationList(self.chats)
        self.sampling_panel = SamplingPanel()
        self.conversations = ConversationController(
            self.chat,
            self.chat_list,
            self.sampling_panel,
            self.chats,
            say=lambda text: self.statusBar().showMessage(text, 10000),
            default_system_prompt=lambda: self.settings.system_prompt,
            parent=self,
        )
        self.tensor_split = ""  # the split editor's shares; "" = by free memory
        self.chat.system_prompt.setText(self.settings.system_prompt)
        self._build_layout()
        self._connect()

        self._backend_job = LatestJob(self)
        self._backend_job.run(
            _detect_backend,
            done=self._backend_ready,
            failed=lambda e: self.backend_label.setText(f"Backend: {e}"),
        )
        self.default_model = default_model_path()
        self._refresh_recent()
        if self.settings.models_folder:
            self.models.set_folder(self.settings.models_folder)
        first = initial_model or self._first_model()
        if first is not None:
            self.choose_model(first, initial_config)
        else:
            self.models.show_notice(
                "No model selected: open a .gguf file, choose a models folder, or drop a file "
                "on this window."
            )
        if settings_warning:
            self.statusBar().showMessage(settings_warning, 15000)
        self.conversations.open_last()
        self.gpu_monitor = GpuMonitor(inventory or GpuInventory(), parent=self)
        self.gpu_monitor.snapshot.connect(self._inventory_updated)

    # -- layout -----------------------------------------------------------------------
    def _build_layout(self) -> None:
        model_box = QGroupBox("Model")
        QVBoxLayout(model_box).addWidget(self.models)
        launch_box = QGroupBox("Launch settings")
        QVBoxLayout(launch_box).addWidget(self.launch)
        plan_box = QGroupBox("Memory plan (before loading)")
        QVBoxLayout(plan_box).addWidget(self.split_editor)

        self.load_button = QPushButton("Load model")
        self.load_button.setObjectName("loadButton")
        self.load_button.setEnabled(False)
        self.load_button.setDefault(True)
        self.unload_button = QPushButton("Unload")
        self.unload_button.setEnabled(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.hide()
        self.progress = QProgressBar()
        self.progress.setObjectName("loadProgress")
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.load_status = QLabel("No model loaded.")
        self.load_status.setObjectName("loadStatus")
        self.load_status.setWordWrap(True)
        self.load_status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.backend_label = QLabel("Backend: detecting…")
        self.backend_label.setObjectName("backendLabel")
        self.backend_label.setWordWrap(True)
        self.backend_label.setStyleSheet("color: palette(mid);")
        buttons = QHBoxLayout()
        buttons.addWidget(self.load_button, 1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.unload_button)

        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.addWidget(model_box)
        side_layout.addWidget(launch_box)
        side_layout.addWidget(plan_box)
        side_layout.addStretch(1)
        side_layout.addWidget(self.backend_label)
        scroll = QScrollArea()
        scroll.setWidget(side)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

        gpu_scroll = QScrollArea()
        gpu_scroll.setWidget(self.gpus)
        gpu_scroll.setWidgetResizable(True)
        gpu_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.tabs = QTabWidget()
        self.tabs.addTab(scroll, "Model")
        self.tabs.addTab(gpu_scroll, "GPUs")
        bench_scroll = QScrollArea()
        bench_scroll.setWidget(self.benchmark)
        bench_scroll.setWidgetResizable(True)
        bench_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.tabs.addTab(bench_scroll, "Benchmark")
        self.server_panel = ServerPanel(self.engine.worker)  # the local API (issue 16)
        self.tabs.addTab(self.server_panel, "Server")
        chats_tab = QWidget()
        chats_layout = QVBoxLayout(chats_tab)
        chats_layout.setContentsMargins(0, 0, 0, 0)
        chats_layout.addWidget(self.chat_list, 1)
        sampling_box = QGroupBox("Sampling (this chat)")
        QVBoxLayout(sampling_box).addWidget(self.sampling_panel)
        chats_layout.addWidget(sampling_box)
        self.chats_tab = chats_tab
        self.tabs.insertTab(1, chats_tab, "Chats")
        self.tabs.setMinimumWidth(420)
        # Load, its progress and status stay in view whatever tab or scroll position.
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 4, 4)
        left_layout.addWidget(self.tabs, 1)
        left_layout.addLayout(buttons)
        left_layout.addWidget(self.progress)
        left_layout.addWidget(self.load_status)

        chat_box = QGroupBox("Chat")
        QVBoxLayout(chat_box).addWidget(self.chat)
        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(chat_box)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([440, 740])
        self.setCentralWidget(splitter)

    def _connect(self) -> None:
        self.models.modelChosen.connect(self.choose_model)
        self.models.infoReady.connect(self._info_ready)
        self.models.infoFailed.connect(self._info_failed)
        self.models.folderChosen.connect(self._folder_chosen)
        self.launch.configChanged.connect(self._config_changed)
        self.gpus.selectionChanged.connect(lambda *_: self._update_launch_preview())
        self.split_editor.splitChanged.connect(self._split_changed)
        self.benchmark.runRequested.connect(self.run_sweep)
        self.benchmark.cancelRequested.connect(self.engine.stop)
        self.engine.sweepRow.connect(self.benchmark.add_row)
        self.engine.sweepFinished.connect(self._sweep_finished)
        self.engine.text.connect(self.conversations.reply_text)
        for keys, action in (
            ("Ctrl+R", self.conversations.regenerate),
            ("Esc", self.chat.stop),
            ("Ctrl+N", self.chat.new_chat),
            ("Ctrl+F", self._focus_search),
        ):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.activated.connect(action)
        self.load_button.clicked.connect(self.load_model)
        self.unload_button.clicked.connect(self.unload_model)
        self.cancel_button.clicked.connect(self.engine.cancel_load)
        w = self.engine
        w.loadProgress.connect(self._load_progress)
        w.loaded.connect(self._loaded)
        w.loadFailed.connect(self._load_failed)
        w.unloaded.connect(self._unloaded)
        w.text.connect(self.chat.append_text)
        w.replyFinished.connect(self._reply_finished)
        w.replyFailed.connect(self._reply_failed)
        self.chat.sendRequested.connect(self._send)
        self.chat.stopRequested.connect(self.engine.stop)

    # -- model choice -------------------------------------------------------------------
    def _first_model(self) -> Path | None:
        for recent in self.settings.recent:
            if Path(recent.path).is_file():
                return Path(recent.path)
        return self.default_model

    def _refresh_recent(self) -> None:
        self.models.set_recent([Path(r.path) for r in self.settings.recent], self.default_model)

    def choose_model(self, path: Path, config: LaunchConfig | None = None) -> None:
        config = config or self.settings.launch_for(path)
        self.tensor_split = config.tensor_split
        self.split_editor.auto_split.setChecked(not config.tensor_split)
        self.launch.set_config(config)
        self.gpus.set_selection(config.gpus, config.maingpu)
        self.load_button.setEnabled(False)
        self.models.show_model(Path(path))

    def _info_ready(self, info: GGUFInfo) -> None:
        self._update_launch_preview()
        self.conversations.model_chosen(info)

    def _info_failed(self, message: str) -> None:
        self._update_launch_preview()
        if self.loaded is not None:
            self.statusBar().showMessage(
                f"{message}. {self.loaded.info.path.name} stays loaded.", 10000
            )

    def _folder_chosen(self, folder: str) -> None:
        self.settings.models_folder = folder
        self._save_settings()

    def _config_changed(self, _config: LaunchConfig) -> None:
        self._update_launch_preview()

    def launch_config(self) -> LaunchConfig:
        gpus, main = self.gpus.selection()
        return self.launch.config().with_values(
            gpus=gpus, maingpu=main, tensor_split=self.tensor_split
        )

    def _split_changed(self, split: str) -> None:
        self.tensor_split = split
        self._update_launch_preview()

    def current_launch(self) -> ResolvedLaunch | None:
        """The launch for the chosen model and settings; None when there is nothing to load
        (the reason is shown beside the GPU layers)."""
        info = self.models.info
        if info is None or self.backend is None:
            return None
        report = hardware_report(self.inventory, self.backend, self.devices)
        try:
            return resolve_launch(
                self.launch_config(),
                info.path,
                info,
                self.backend.gpu_offload,
                report,
                measured=self.benchmark.measured_pairs(),
            )
        except ConfigError as e:
            self.launch.set_gpu_layers_note(str(e))
            self.split_editor.set_plan(None, str(e))
            return None

    def _update_launch_preview(self) -> None:
        launch = self.current_launch()
        if launch is not None:
            self.launch.set_gpu_layers_note(launch.gpu_layers_note)
            self.split_editor.set_plan(launch.plan, self._plan_note(launch))
            over = launch.plan is not None and not launch.plan.fits
            self.load_button.setText("Load (over budget!)" if over else "Load model")
            self.load_button.setToolTip(
                "\n".join(launch.plan.messages) if over and launch.plan else ""
            )
        self.load_button.setEnabled(
            launch is not None
            and self.backend is not None
            and not self.loading
            and not self.chat.streaming
            and not self.sweeping
        )

    @staticmethod
    def _plan_note(launch: ResolvedLaunch) -> str:
        plan = launch.plan
        if plan is None:
            return ""
        if not any(d.is_gpu for d in plan.devices):
            return (
                f"No GPU: everything in RAM, about {human_bytes(plan.devices[-1].total)} "
                f"for context {launch.n_ctx_effective}."
            )
        state = "fits" if plan.fits else "does NOT fit"
        return (
            f"GPU layers {launch.n_gpu_layers} ({launch.gpu_layers_note}): {state}, "
            f"keeping {human_bytes(plan.request.margin)} free per GPU."
        )

    def _inventory_updated(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self.gpus.update_inventory(inventory)
        if inventory.gpus and not self.loading:
            self._update_launch_preview()
        if self.backend is not None:
            report = hardware_report(inventory, self.backend, self.devices)
            self.gpus.set_build_note(" ".join(report.warnings))

    def _backend_ready(self, found: tuple[BackendInfo, list[BackendDevice]]) -> None:
        backend, self.devices = found
        self.backend = backend
        self._inventory_updated(self.inventory)
        text = f"llama.cpp backend: {backend.name} (llama-cpp-python {backend.llama_cpp_python})"
        if not backend.gpu_offload:
            text += f". This build cannot offload to a GPU. {CUDA_HINT}"
        self.backend_label.setText(text)
        self._update_launch_preview()

    # -- dropping a file ------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        urls = event.mimeData().urls()
        if urls and urls[0].isLocalFile():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        urls = event.mimeData().urls()
        if urls and urls[0].isLocalFile():
            self.choose_model(Path(urls[0].toLocalFile()))
            event.acceptProposedAction()

    # -- loading ----------------------------------------------------------------------
    def load_model(self) -> None:
        launch = self.current_launch()
        if launch is None or self.loading or self.chat.streaming:
            return
        self.loading = True
        self.chat.set_model_ready(False)
        self.load_button.setEnabled(False)
        self.unload_button.setEnabled(False)
        self.cancel_button.show()
        self.progress.setValue(0)
        self.progress.setFormat(
            f"Loading {launch.model_path.name if launch.model_path else ''}… %p%"
        )
        self.progress.show()
        self.load_status.setText("Loading…")
        self.engine.load(launch, self.models.info)

    def _load_progress(self, value: float) -> None:
        self.progress.setValue(round(value * 1000))

    def _loaded(self, loaded: LoadedModel) -> None:
        self.loading = False
        self.loaded = loaded
        self.cancel_button.hide()
        self.progress.hide()
        self.unload_button.setEnabled(True)
        self.chat.set_model_ready(True)
        self._update_launch_preview()
        self.load_status.setText(
            f"Loaded {loaded.info.path.name} in {loaded.load_seconds:.1f} s · "
            f"context {loaded.n_ctx} · n_batch {loaded.n_batch} · n_ubatch {loaded.n_ubatch} "
            f"(read back from llama.cpp) · {human_bytes(loaded.info.file_size)}"
        )
        self.setWindowTitle(f"{loaded.info.path.name} — kobold-gui {__version__}")
        self.settings.remember(loaded.info.path, loaded.launch.config)
        self.benchmark.set_model_ready(True)
        self.chat.n_ctx = loaded.n_ctx
        self._show_kept_sweep(loaded)
        self.split_editor.set_measured(_measured_text(loaded))
        self.gpu_monitor.poll_now()
        self._refresh_recent()
        self._save_settings()

    def _load_failed(self, message: str, cancelled: bool, still_loaded: LoadedModel | None) -> None:
        self.loading = False
        self.loaded = still_loaded
        self.cancel_button.hide()
        self.progress.hide()
        self.chat.set_model_ready(still_loaded is not None)
        self.benchmark.set_model_ready(still_loaded is not None)
        self.unload_button.setEnabled(still_loaded is not None)
        self._update_launch_preview()
        state = (
            f"{still_loaded.info.path.name} stays loaded." if still_loaded else "No model loaded."
        )
        self.load_status.setText(f"{message} {state}")
        if not cancelled:
            self.models.show_notice(message)

    def unload_model(self) -> None:
        if self.chat.streaming:
            self.engine.stop()
        self.engine.unload()

    def _unloaded(self) -> None:
        self.loaded = None
        self.benchmark.set_model_ready(False)
        self.split_editor.set_measured("")
        self.chat.set_model_ready(False)
        self.unload_button.setEnabled(False)
        self.load_status.setText("No model loaded.")
        self.setWindowTitle(f"kobold-gui {__version__}")
        self._update_launch_preview()

    # -- chat -------------------------------------------------------------------------
    def _focus_search(self) -> None:
        self.tabs.setCurrentWidget(self.chats_tab)
        self.chat_list.search.setFocus()

    def _send(self, messages: list[object]) -> None:
        self.conversations.begin_turn(str(self.loaded.info.path) if self.loaded else None)
        self.load_button.setEnabled(False)
        self.unload_button.setEnabled(False)
        self.engine.send(messages, self.sampling)  # type: ignore[arg-type]

    @property
    def sampling(self) -> SamplingParams:
        """The open conversation's sampling, as replies are asked with."""
        return self.conversations.sampling

    @sampling.setter
    def sampling(self, params: SamplingParams) -> None:
        """Set from code (the panel shows it and the conversation keeps it)."""
        self.sampling_panel.set_params(params)
        self.conversations.set_sampling(params)

    def _reply_finished(self, result: GenerationResult) -> None:
        self.chat.finish_reply(result)
        self.conversations.reply_finished(result)
        self.unload_button.setEnabled(self.loaded is not None)
        self._update_launch_preview()

    # -- batch-size sweep -------------------------------------------------------------------
    def _sweep_identity(self, loaded: LoadedModel) -> dict[str, object] | None:
        if self.backend is None:
            return None
        return sweep_identity(self.inventory, self.backend, loaded.launch)

    def _show_kept_sweep(self, loaded: LoadedModel) -> None:
        identity = self._sweep_identity(loaded)
        rows = load_sweep(identity) if identity else None
        self.benchmark.set_rows(rows or [])
        self._measured_to_slider()

    def _measured_to_slider(self) -> None:
        self.launch.batch.set_measured(
            {b: (r.prompt_tps, r.gen_tps) for b, r in self.benchmark.measured_by_blas().items()}
        )
        pairs = self.benchmark.measured_pairs()
        self.launch.set_measured_pair(pairs[0] if pairs else None)

    def run_sweep(self, prompt: int, gen: int) -> None:
        loaded = self.loaded
        if loaded is None or self.chat.streaming or self.loading or self.sweeping:
            self.benchmark.status.setText("Load a model first (and let a reply finish).")
            return
        prompt = min(prompt, loaded.n_ctx - gen - 2)
        candidates = [
            c for c in candidates_from(n_gpus=len(self.inventory.gpus)) if c.n_batch <= loaded.n_ctx
        ]
        if prompt < 16 or not candidates:
            self.benchmark.status.setText("The context is too small for a sweep.")
            return
        self.sweeping = True
        self.chat.set_model_ready(False)
        self.load_button.setEnabled(False)
        self.unload_button.setEnabled(False)
        self.benchmark.started(len(candidates))
        self.engine.sweep(candidates, prompt, gen)

    def _sweep_finished(self, rows: list[SweepRow]) -> None:
        self.sweeping = False
        self.benchmark.finished(rows)
        self.chat.set_model_ready(self.loaded is not None)
        self.unload_button.setEnabled(self.loaded is not None)
        self._update_launch_preview()
        if self.loaded is not None and rows:
            identity = self._sweep_identity(self.loaded)
            if identity:
                save_sweep(identity, rows)
        self._measured_to_slider()

    def _reply_failed(self, message: str) -> None:
        self.chat.fail_reply(message)
        self.conversations.reply_failed()
        self.unload_button.setEnabled(self.loaded is not None)
        self._update_launch_preview()

    # -- settings and closing ---------------------------------------------------------------
    def _save_settings(self) -> None:
        self.settings.system_prompt = self.chat.system_prompt.text()
        try:
            self.store.save(self.settings)
        except OSError as e:
            self.statusBar().showMessage(f"Settings not saved: {e}", 10000)

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._closing:
            self._closing = True
            self._save_settings()
            self.gpu_monitor.stop()
            self.server_panel.shutdown()
            self.engine.shutdown()
            wait_for_background_jobs()
        event.accept()
