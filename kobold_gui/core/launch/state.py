"""The one launch state: the settings the user edits and the launch resolved from them.

Widgets send edits here; `resolve_launch` runs once per change; everything that shows a
launch value (the batch label, the GPU-layers note, the memory plan, the split editor, Load)
draws from `resolved` and `batch`, so nothing on screen can disagree with what is loaded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from kobold_gui.core.hardware.report import HardwareReport
from kobold_gui.core.launch.batching import BatchPlan, MeasuredChoice
from kobold_gui.core.launch.options import ConfigError, LaunchConfig
from kobold_gui.core.launch.resolve import ResolvedLaunch, resolve_batch, resolve_launch
from kobold_gui.core.models.gguf_info import GGUFInfo
from kobold_gui.core.plan.memory_plan import GpuBudget
from kobold_gui.core.remote.probe import Endpoint, RemoteDevice

Listener = Callable[["LaunchState"], None]


class LaunchState:
    def __init__(self, config: LaunchConfig | None = None) -> None:
        self.config = config or LaunchConfig()
        self.model_path: Path | None = None
        self.info: GGUFInfo | None = None
        self.gpu_offload: bool | None = None  # None until the backend is known
        self.hardware: HardwareReport | None = None
        self.assumed_gpus: tuple[GpuBudget, ...] | None = None  # what-if GPUs
        self.measured: MeasuredChoice | None = None
        self.remote: tuple[RemoteDevice, ...] = ()  # devices of the machines that answered
        self.resolved: ResolvedLaunch | None = None
        self.error: str | None = None  # why there is no launch (a setting, or no model)
        self.batch: BatchPlan = resolve_batch(self.config)
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    # -- inputs ---------------------------------------------------------------------------
    def edit(self, **values: Any) -> None:
        """Change launch options by name (the option table's names). A value the table
        refuses leaves the config as it was and shows the reason."""
        try:
            config = self.config.with_values(**values)
        except ConfigError as e:
            self.error = str(e)
            self._notify()
            return
        if config != self.config:
            self.config = config
            self._update()

    def set_config(self, config: LaunchConfig) -> None:
        self.config = config
        self._update()

    def set_model(self, path: Path | None, info: GGUFInfo | None) -> None:
        self.model_path, self.info = path, info
        self._update()

    def set_backend(
        self,
        gpu_offload: bool,
        hardware: HardwareReport | None,
        assumed_gpus: tuple[GpuBudget, ...] | None = None,
    ) -> None:
        """The build, this machine's GPUs, and GPUs to plan for instead (what-if)."""
        self.gpu_offload, self.hardware = gpu_offload, hardware
        self.assumed_gpus = assumed_gpus
        self._update()

    def set_remote(
        self, devices: tuple[RemoteDevice, ...], endpoints: tuple[Endpoint, ...]
    ) -> None:
        """The machines in use (config.rpc, in order) and the devices of those that answered
        their check (core/remote/probe.py): one change, one resolve."""
        self.remote = devices
        self.config = self.config.with_values(rpc=endpoints)
        self._update()

    def set_measured(self, measured: MeasuredChoice | None) -> None:
        self.measured = measured
        self._update()

    # -- the one result --------------------------------------------------------------------
    def _update(self) -> None:
        self.resolved, self.error = self._resolve()
        # The launch's batch (after a measured pair's step-down); without a launch, the
        # slider's value through the policy all the same.
        resolved = self.resolved
        self.batch = resolved.batch if resolved else resolve_batch(self.config, self.measured)
        self._notify()

    def _resolve(self) -> tuple[ResolvedLaunch | None, str | None]:
        if self.info is None:
            return None, "no model chosen"
        if self.gpu_offload is None:
            return None, "detecting the llama.cpp backend…"
        try:
            launch = resolve_launch(
                self.config,
                self.model_path,
                self.info,
                self.gpu_offload,
                self.hardware,
                self.assumed_gpus,
                self.measured,
                self.remote,
            )
        except ValueError as e:  # ConfigError, and a plan the model cannot make
            return None, str(e)
        return launch, None

    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener(self)
