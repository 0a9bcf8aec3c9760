"""The engine whose model lives in a child process (core/engine/child_process.py), for loads
that use other machines' devices (llama.cpp's RPC backend): ggml aborts the process whose
connection to a machine fails, and a registered remote device cannot be removed again.

This side keeps only a vocab-only model (tokenizing, chat templates, fitting a conversation:
the Engine base class's work) and relays load, generation and measurements to a LocalEngine
in the child, with their events (load progress, streamed text) and Stop. When the child
dies, or is ended because it did not answer Stop in time or went silent (a machine frozen
mid-reply: core/engine/child_process.py), the error (ModelLost) names the machine that
stopped answering and the model counts as unloaded; text streamed until then has reached
`on_text`. Local loads stay in-process unless asked (`isolate`, core/engine/choice.py):
the child costs 1.4 s per load and 2 % of generation speed on an H100
(bench/engine_process.py), for a containment that only the RPC client, which aborts by
design, has needed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, cast

import llama_cpp

from kobold_gui.core.engine.child_process import (
    ChildDied,
    EngineProcess,
    Unanswered,
    lost_model,
)
from kobold_gui.core.engine.loaded_model import LoadedModel
from kobold_gui.core.engine.protocol import (
    Engine,
    GpuUsed,
    OnProgress,
    OnText,
    check_prompt,
    model_info,
)
from kobold_gui.core.engine.types import (
    BatchMeasurement,
    EngineError,
    GenerationResult,
    LoadCancelled,
    SamplingParams,
)
from kobold_gui.core.engine.vocab import Vocab, load_vocab_only
from kobold_gui.core.launch.resolve import ResolvedLaunch
from kobold_gui.core.llama.library import init_backend
from kobold_gui.core.models.gguf_info import GGUFInfo


class ChildEngine(Engine):
    def __init__(self) -> None:
        self._child: EngineProcess | None = None
        self._vocab_model: Any = None  # vocab only: no weights, no device
        self._vocab: Vocab | None = None
        self.loaded: LoadedModel | None = None

    def load(
        self,
        launch: ResolvedLaunch,
        on_progress: OnProgress | None = None,
        cancel: threading.Event | None = None,
        info: GGUFInfo | None = None,
    ) -> LoadedModel:
        """Check every machine from Python (ggml would abort on one that fails), load in a
        child process, and keep the vocabulary here."""
        info = model_info(launch, info)  # ModelFileError before llama.cpp
        assert launch.model_path is not None
        self.close()
        init_backend()
        _check_machines(launch.rpc_servers)
        child = self._child = EngineProcess()

        def event(kind: str, value: Any) -> None:
            if kind == "progress" and on_progress is not None:
                on_progress(value)

        try:
            loaded = child.call(
                "load", launch, info, on_event=event, cancel=cancel or threading.Event()
            )
            self._vocab_model, self._vocab = load_vocab_only(launch.model_path, info)
        except ChildDied as e:
            if isinstance(e, Unanswered) and e.stopped:  # Cancel, over a machine stuck
                self.close()
                raise LoadCancelled(f"loading was cancelled ({e})") from None
            lost = lost_model(e, launch.rpc_servers, child, "while loading")
            self.close()
            raise lost from None
        except BaseException:
            self.close()
            raise
        self.loaded = cast(LoadedModel, loaded)
        return self.loaded

    def generate(
        self,
        prompt_tokens: list[int],
        params: SamplingParams,
        on_text: OnText,
        cancel: threading.Event | None = None,
    ) -> GenerationResult:
        check_prompt(prompt_tokens, self._require().n_ctx)

        def relay(_kind: str, text: Any) -> None:
            on_text(text)

        result = self._call("generate", prompt_tokens, params, on_event=relay, cancel=cancel)
        return cast(GenerationResult, result)

    def measure_batch(
        self,
        n_batch: int,
        n_ubatch: int,
        prompt_tokens: int,
        gen_tokens: int,
        cancel: threading.Event | None = None,
        gpu_used: GpuUsed | None = None,
    ) -> BatchMeasurement:
        """GPU memory is read here, where NVML is open, when the child asks."""

        def memory(_kind: str, _value: Any) -> tuple[int, ...]:
            return tuple(gpu_used()) if gpu_used else ()

        args = (n_batch, n_ubatch, prompt_tokens, gen_tokens)
        measured = self._call("measure_batch", *args, on_event=memory, cancel=cancel)
        return cast(BatchMeasurement, measured)

    def _call(
        self,
        name: str,
        *args: Any,
        on_event: Callable[[str, Any], Any] | None = None,
        cancel: threading.Event | None = None,
    ) -> Any:
        """Call the child; when it died, the model is unloaded and ModelLost says why."""
        loaded = self._require()
        assert self._child is not None
        child = self._child
        try:
            return child.call(name, *args, on_event=on_event, cancel=cancel)
        except ChildDied as e:
            when = "during the benchmark" if name == "measure_batch" else "during the reply"
            lost = lost_model(e, loaded.launch.rpc_servers, child, when)
            self.close()
            raise lost from None

    def close(self) -> None:
        if self._child is not None:
            self._child.close()
            self._child = None
        if self._vocab_model:
            llama_cpp.llama_model_free(self._vocab_model)
        self._vocab_model = self._vocab = None
        self.loaded = None


def _check_machines(endpoints: tuple[str, ...]) -> None:
    """Every machine must answer before the child registers it (ggml would abort)."""
    from kobold_gui.core.remote.probe import RpcError, probe

    for endpoint in endpoints:
        try:
            probe(endpoint)
        except RpcError as e:
            raise EngineError(f"cannot load over {endpoint}: {e}") from None
