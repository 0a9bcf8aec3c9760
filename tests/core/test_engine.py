"""The engine against the real llama.cpp, on the default model and synthetic models."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from kobold_gui.core.engine.local import LocalEngine
from kobold_gui.core.engine.prompt_template import Message
from kobold_gui.core.engine.stop_strings import StopStringFilter
from kobold_gui.core.engine.types import EngineError, LoadCancelled, SamplingParams
from kobold_gui.core.launch.options import LaunchConfig
from kobold_gui.core.launch.resolve import resolve_launch
from kobold_gui.core.models.gguf_info import ModelFileError

GREEDY = SamplingParams(max_tokens=24, temperature=0.0)


def load(path: Path, **options: object) -> LocalEngine:
    engine = LocalEngine()
    engine.load(resolve_launch(LaunchConfig().with_values(**options), path, None, False))
    return engine


@pytest.fixture(scope="module")
def smol(default_model: Path) -> LocalEngine:
    engine = load(default_model, contextsize=2048)
    yield engine
    engine.close()


@pytest.mark.parametrize(
    ("blas", "ctx", "policy", "expected"),
    [
        (512, 2048, "koboldcpp", (512, 512)),
        (2048, 4096, "koboldcpp", (2048, 1024)),
        (2048, 1024, "koboldcpp", (1024, 1024)),
        (2048, 4096, "tied", (2048, 2048)),
        (4096, 1000, "koboldcpp", (1000, 1000)),
    ],
)
def test_batch_values_read_back_from_the_context(
    tiny_model: Path, blas: int, ctx: int, policy: str, expected: tuple[int, int]
) -> None:
    config = LaunchConfig(blasbatchsize=blas, contextsize=ctx, batchpolicy=policy)
    launch = resolve_launch(config, tiny_model, None, False)
    engine = LocalEngine()
    loaded = engine.load(launch)
    try:
        assert (loaded.n_batch, loaded.n_ubatch) == expected
        assert (launch.batch.n_batch, launch.batch.n_ubatch) == expected  # what we show
        assert loaded.n_ctx == launch.n_ctx_effective
    finally:
        engine.close()


def test_reply_streams_in_pieces_and_is_deterministic_when_greedy(smol: LocalEngine) -> None:
    pieces: list[str] = []
    messages = [Message("user", "What is the capital of France?")]
    first = smol.chat(messages, GREEDY, pieces.append)
    assert first.generated_tokens > 3
    assert len(pieces) >= 3 and "".join(pieces) == first.text
    assert "Paris" in first.text
    again = smol.chat(messages, GREEDY, lambda _t: None)
    assert again.text == first.text
    assert first.tokens_per_s > 0 and first.time_to_first_token_s > 0


def test_next_turn_reuses_the_cached_prefix(smol: LocalEngine) -> None:
    turn1 = [Message("system", "Be brief."), Message("user", "Name a colour.")]
    r1 = smol.chat(turn1, GREEDY, lambda _t: None)
    turn2 = [*turn1, Message("assistant", r1.text), Message("user", "Another one?")]
    t1, t2 = smol.chat_tokens(turn1), smol.chat_tokens(turn2)
    assert t2[: len(t1)] == t1  # the first turn's prompt starts the second's
    r2 = smol.chat(turn2, GREEDY, lambda _t: None)
    # At most what follows the first prompt is processed again (the reply may re-tokenize
    # differently from how it was sampled), never the whole conversation.
    assert 0 < r2.prompt_tokens_processed <= len(t2) - len(t1)
    assert r2.prompt_tokens == len(t2)


def test_max_tokens_ends_with_length(tiny_model: Path) -> None:
    engine = load(tiny_model)
    result = engine.chat([Message("user", "hi")], SamplingParams(max_tokens=7), lambda _t: None)
    assert (result.generated_tokens, result.stop_reason) == (7, "length")
    engine.close()


def test_stop_during_a_long_prompt_aborts_the_decode(default_model: Path) -> None:
    """Stop must not wait for the prompt: llama.cpp's abort callback ends the decode."""
    engine = load(default_model, contextsize=4096, blasbatchsize=4096)
    cancel = threading.Event()
    prompt = engine.tokenize("word " * 3000)
    timer = threading.Timer(0.05, cancel.set)
    timer.start()
    result = engine.generate(prompt, SamplingParams(max_tokens=5), lambda _t: None, cancel)
    timer.join()
    assert result.stop_reason == "stopped"
    assert result.generated_tokens == 0
    # The aborted batch left nothing half-done in the cache; the engine still works.
    assert len(engine._cached) < len(prompt)
    after = engine.chat([Message("user", "Hi")], GREEDY, lambda _t: None)
    assert after.generated_tokens > 0
    engine.close()


def test_stop_mid_reply(tiny_model: Path) -> None:
    engine = load(tiny_model)
    cancel = threading.Event()
    seen: list[str] = []

    def on_text(piece: str) -> None:
        seen.append(piece)
        if len(seen) == 10:
            cancel.set()

    result = engine.chat([Message("user", "go")], SamplingParams(max_tokens=5000), on_text, cancel)
    assert result.stop_reason == "stopped"
    assert 10 <= result.generated_tokens <= 12
    engine.close()


def test_prompt_longer_than_the_context_is_refused(tiny_model: Path) -> None:
    engine = load(tiny_model, contextsize=256)
    with pytest.raises(EngineError, match="more than the context of 256"):
        engine.chat([Message("user", "word " * 400)], GREEDY, lambda _t: None)
    assert engine.chat([Message("user", "ok")], GREEDY, lambda _t: None).generated_tokens > 0
    engine.close()


def test_empty_prompt_is_refused(tiny_model: Path) -> None:
    engine = load(tiny_model)
    with pytest.raises(EngineError, match="empty"):
        engine.generate([], GREEDY, lambda _t: None)
    engine.close()


def test_load_can_be_cancelled_from_the_progress_callback(default_model: Path) -> None:
    cancel = threading.Event()
    seen: list[float] = []

    def progress(value: float) -> None:
        seen.append(value)
        if value > 0.2:
            cancel.set()

    engine = LocalEngine()
    launch = resolve_launch(LaunchConfig(), default_model, None, False)
    with pytest.raises(LoadCancelled):
        engine.load(launch, progress, cancel)
    assert engine.loaded is None and seen and max(seen) < 1.0


def test_progress_reaches_one_on_a_full_load(default_model: Path) -> None:
    seen: list[float] = []
    engine = LocalEngine()
    engine.load(resolve_launch(LaunchConfig(), default_model, None, False), seen.append)
    assert seen[-1] == pytest.approx(1.0) and seen == sorted(seen) and len(seen) > 5
    engine.close()


def test_bad_file_is_refused_before_llama_cpp(bad_files: dict[str, Path]) -> None:
    engine = LocalEngine()
    for path in bad_files.values():
        with pytest.raises(ModelFileError):
            engine.load(resolve_launch(LaunchConfig(), path, None, False))


def test_a_bad_file_given_to_the_worker_leaves_the_model_loaded(
    tiny_model: Path, bad_files: dict[str, Path]
) -> None:
    from kobold_gui.core.engine.worker import EngineWorker

    worker = EngineWorker()
    try:
        good = worker.load(resolve_launch(LaunchConfig(), tiny_model, None, False))
        assert good.wait(120) and good.error is None and worker.loaded is not None
        bad_path = next(iter(bad_files.values()))
        bad = worker.load(resolve_launch(LaunchConfig(), bad_path, None, False))
        assert bad.wait(120) and isinstance(bad.error, ModelFileError)
        assert worker.loaded is good.result  # read before anything was freed
        assert worker.tokenize("hello")
    finally:
        worker.close()


def test_a_load_over_other_machines_or_isolated_gets_a_child_engine(tiny_model: Path) -> None:
    from dataclasses import replace

    from kobold_gui.core.engine.child import ChildEngine
    from kobold_gui.core.engine.choice import engine_for

    local = resolve_launch(LaunchConfig(), tiny_model, None, False)
    remote = replace(local, rpc_servers=("127.0.0.1:50052",))
    assert type(engine_for(local)) is LocalEngine
    assert type(engine_for(remote)) is ChildEngine
    assert type(engine_for(local, isolate=True)) is ChildEngine


def test_loading_another_model_frees_the_first(tiny_model: Path, default_model: Path) -> None:
    import llama_cpp

    def mapped(path: Path) -> bool:  # llama.cpp maps a model's file while it is loaded
        return str(path.resolve()) in Path("/proc/self/maps").read_text()

    engine = load(tiny_model)
    assert llama_cpp.llama_model_n_layer(engine._model) == 2 and mapped(tiny_model)
    engine.load(resolve_launch(LaunchConfig(), default_model, None, False))
    assert llama_cpp.llama_model_n_layer(engine._model) == 30  # the live handle is the new one
    assert not mapped(tiny_model) and mapped(default_model)  # the first one was freed
    assert engine.loaded is not None and engine.loaded.info.path == default_model
    engine.close()
    assert engine.loaded is None and engine._model is None and engine._ctx is None


@pytest.mark.parametrize(
    ("pieces", "stops", "expected", "hit"),
    [
        (["Hel", "lo ", "wor", "ld"], ["world"], "Hello ", True),
        (["a<", "/s", "> b"], ["</s>"], "a", True),
        (["a<", "b"], ["</s>"], "a<b", False),
        (["plain"], [], "plain", False),
    ],
)
def test_stop_strings_are_held_back_until_decided(
    pieces: list[str], stops: list[str], expected: str, hit: bool
) -> None:
    out: list[str] = []
    f = StopStringFilter(stops, out.append)
    reached = any([f.feed(p) for p in pieces])
    if not reached:
        f.flush()
    assert ("".join(out), reached) == (expected, hit)
