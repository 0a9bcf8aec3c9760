"""The window's session state without Qt: every transition, what each state enables, and the
transitions that come at the wrong time (a Stop during a load, a failed load, a model lost
mid-reply) leaving a state that still makes sense."""

from __future__ import annotations

import pytest

from kobold_gui.core.session import Activity, Session, SessionState

ENABLED = (
    "can_load",
    "can_unload",
    "can_cancel_load",
    "chat_ready",
    "can_send",
    "can_benchmark",
    "can_cancel_sweep",
)


def enabled(state: SessionState) -> set[str]:
    return {name for name in ENABLED if getattr(state, name)}


def recorded() -> tuple[Session, list[SessionState]]:
    session = Session()
    seen: list[SessionState] = []
    session.subscribe(seen.append)
    return session, seen


def loaded_session() -> Session:
    session = Session()
    session.launch_changed(True)
    assert session.load_started()
    session.load_finished()
    return session


@pytest.mark.parametrize(
    ("state", "phase", "expected"),
    [
        (SessionState(), "idle", set()),
        (SessionState(launchable=True), "idle", {"can_load"}),
        (
            SessionState(loaded=True, launchable=True),
            "loaded",
            {"can_load", "can_unload", "chat_ready", "can_send", "can_benchmark"},
        ),
        (SessionState(Activity.LOADING, launchable=True), "loading", {"can_cancel_load"}),
        (SessionState(Activity.LOADING, loaded=True), "loading", {"can_cancel_load"}),
        (SessionState(Activity.REPLYING, loaded=True, launchable=True), "replying", {"chat_ready"}),
        (SessionState(Activity.SWEEPING, loaded=True), "sweeping", {"can_cancel_sweep"}),
        (SessionState(Activity.REPLYING, loaded=True, serving=True), "replying", {"chat_ready"}),
    ],
)
def test_what_each_state_enables(state: SessionState, phase: str, expected: set[str]) -> None:
    assert state.phase == phase
    assert enabled(state) == expected


def test_a_listener_hears_the_state_at_once_then_each_change_once() -> None:
    session, seen = recorded()
    assert seen == [SessionState()]
    session.launch_changed(True)
    session.launch_changed(True)  # no change: not told again
    assert seen == [SessionState(), SessionState(launchable=True)]
    session.unsubscribe(seen.append)
    session.launch_changed(False)
    assert len(seen) == 2


def test_load_chat_sweep_unload() -> None:
    session, seen = recorded()
    assert not session.load_started()  # nothing to load yet
    session.launch_changed(True)
    assert session.load_started()
    assert seen[-1] == SessionState(Activity.LOADING, launchable=True)
    session.load_finished()
    assert session.state.phase == "loaded"
    assert session.reply_started()
    assert session.state.activity is Activity.REPLYING and not session.state.can_unload
    session.reply_ended()
    assert session.state.phase == "loaded"
    assert session.sweep_started()
    assert session.state.can_cancel_sweep and not session.state.chat_ready
    session.sweep_ended()
    assert session.state.can_benchmark
    session.unloaded()
    assert session.state == SessionState(launchable=True)
    assert [s.phase for s in seen] == [
        "idle",
        "idle",
        "loading",
        "loaded",
        "replying",
        "loaded",
        "sweeping",
        "loaded",
        "idle",
    ]


def test_a_stop_during_a_load_changes_nothing_and_cancel_ends_it() -> None:
    session = loaded_session()
    assert session.load_started()  # a second model over the first
    before = session.state
    session.reply_ended()  # Esc: no reply runs
    session.sweep_ended()
    assert session.state == before and before.loaded and not before.chat_ready
    session.load_failed(still_loaded=True)  # cancelled: the first model stays
    assert session.state.phase == "loaded" and session.state.can_send


def test_a_failed_load_without_a_model_before_it() -> None:
    session = Session()
    session.launch_changed(True)
    assert session.load_started()
    session.load_failed(still_loaded=False)
    assert session.state == SessionState(launchable=True)
    assert enabled(session.state) == {"can_load"}


def test_replying_while_serving_and_the_server_stopping_mid_reply() -> None:
    session = loaded_session()
    session.serving_changed(True)
    assert session.reply_started()
    assert session.state.serving and session.state.phase == "replying"
    session.serving_changed(False)
    assert session.state.activity is Activity.REPLYING
    session.reply_ended()
    assert session.state == SessionState(loaded=True, launchable=True)


def test_starting_what_the_state_does_not_allow_is_refused() -> None:
    session = loaded_session()
    assert session.reply_started()
    replying = session.state
    assert not session.load_started()
    assert not session.sweep_started()
    assert session.state == replying
    session.reply_ended()
    assert session.sweep_started()
    assert not session.reply_started()  # the panel offers no Send while it sweeps
    assert not session.load_started()
    assert session.state.activity is Activity.SWEEPING


def test_the_end_of_what_is_not_running_still_tells_whether_a_model_is_in() -> None:
    session = Session()
    session.load_finished()  # a load the session did not see start: the engine knows
    assert session.state == SessionState(loaded=True)
    session.load_failed(still_loaded=False)
    assert session.state == SessionState()


def test_a_model_lost_mid_reply() -> None:
    session = loaded_session()
    assert session.reply_started()
    session.unloaded()  # a remote machine dropped: the reply's failure comes after
    assert session.state.activity is Activity.REPLYING and not session.state.chat_ready
    assert not session.reply_started()
    session.reply_ended()
    assert session.state == SessionState(launchable=True)


def test_a_reply_asked_while_the_one_left_behind_still_ends() -> None:
    """New chat stops the reply; the user sends again before its end arrives."""
    session = loaded_session()
    assert session.reply_started()
    assert session.reply_started()
    session.reply_ended()  # the one left behind
    assert session.state.activity is Activity.REPLYING and not session.state.can_load
    session.reply_ended()
    assert session.state.phase == "loaded"
    session.reply_ended()  # one too many (a sweep's error ends "a reply"): nothing happens
    assert session.state.phase == "loaded"


def test_a_listener_that_changes_the_state_leaves_nobody_behind() -> None:
    """As the window's load-when-ready does: Load as soon as it can."""
    session = Session()
    first: list[SessionState] = []
    session.subscribe(first.append)

    def load_when_ready(state: SessionState) -> None:
        if state.can_load:
            session.load_started()

    session.subscribe(load_when_ready)
    last: list[SessionState] = []
    session.subscribe(last.append)
    session.launch_changed(True)
    assert session.state.activity is Activity.LOADING
    assert first[-1] == last[-1] == session.state
    assert SessionState(launchable=True) not in last  # never told the older state last
