"""The window's session: what it is doing with its model now, and what that lets the user do.

One activity at a time, as the engine runs the window's jobs one at a time: IDLE, LOADING
a model, REPLYING in the chat, SWEEPING (the benchmark). Beside it, flags: a model is
`loaded` (it stays loaded while another one loads over it, until that one is in), the API
server is `serving` (it shares the engine, so it is independent of the activity: loaded and
replying while serving is normal), and the chosen settings make a `launchable` launch.

The window's flows report what happens through the transition methods; the panels subscribe
(a plain callback, called at once and then after each change, with the new SessionState)
and set their own buttons from its `can_*` properties. Everything runs on one thread, the
GUI's; a change made by a listener is delivered to every listener before the older one
finishes, so nobody is left with a stale state.

Transitions that do not fit the state never raise:
- Asking to start an activity (`load_started`, `reply_started`, `sweep_started`) when its
  `can_*` is false is refused: False comes back and nothing changes. One exception: a reply
  asked while one is still ending (New chat stops it; its end comes a moment later) is
  counted, and REPLYING lasts until both have ended.
- The end of an activity that is not running (`load_finished`, `load_failed`, `reply_ended`,
  `sweep_ended`: a sweep's error also ends "a reply", a Stop that comes during a load) leaves
  the activity as it is; what the engine reports about the model (loaded or not) is taken
  all the same, since the engine knows.
- `unloaded` may come at any time (a remote machine dropped the model mid-reply): the
  model is gone, and the running activity goes on until its own end is reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum


class Activity(Enum):
    IDLE = "idle"
    LOADING = "loading"
    REPLYING = "replying"
    SWEEPING = "sweeping"


@dataclass(frozen=True)
class SessionState:
    activity: Activity = Activity.IDLE
    loaded: bool = False  # a model is loaded (during a load: the one before, if any)
    serving: bool = False  # the API server runs
    launchable: bool = False  # the model and settings chosen resolve to a launch

    @property
    def phase(self) -> str:
        """idle, loaded, loading, replying or sweeping (serving is its own flag)."""
        if self.activity is Activity.IDLE and self.loaded:
            return "loaded"
        return self.activity.value

    # -- what is enabled ----------------------------------------------------------------
    @property
    def can_load(self) -> bool:
        """Load model: a launch, and nothing else running on the engine."""
        return self.launchable and self.activity is Activity.IDLE

    @property
    def can_unload(self) -> bool:
        return self.loaded and self.activity is Activity.IDLE

    @property
    def can_cancel_load(self) -> bool:
        """Cancel (and the load's progress bar) while a load runs."""
        return self.activity is Activity.LOADING

    @property
    def chat_ready(self) -> bool:
        """The model can answer the chat: Send, Regenerate and Continue are offered when the
        chat panel has no reply of its own streaming (Stop and Edit last are the panel's:
        they depend on its reply and its messages, not on the model)."""
        return self.loaded and self.activity in (Activity.IDLE, Activity.REPLYING)

    @property
    def can_send(self) -> bool:
        """A new reply may start (a reply still ending aside: see reply_started)."""
        return self.loaded and self.activity is Activity.IDLE

    @property
    def can_benchmark(self) -> bool:
        """Run sweep: it measures the loaded model with nothing else running."""
        return self.loaded and self.activity is Activity.IDLE

    @property
    def can_cancel_sweep(self) -> bool:
        return self.activity is Activity.SWEEPING


Listener = Callable[[SessionState], None]


class Session:
    def __init__(self) -> None:
        self._state = SessionState()
        self._replies = 0  # replies asked and not yet ended (see the module's docstring)
        self._listeners: list[Listener] = []
        self._notifying = False
        self._changed_while_notifying = False

    @property
    def state(self) -> SessionState:
        return self._state

    def subscribe(self, listener: Listener) -> None:
        """Called at once with the current state, then after every change."""
        self._listeners.append(listener)
        listener(self._state)

    def unsubscribe(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    # -- loading ----------------------------------------------------------------------------
    def load_started(self) -> bool:
        if not self._state.can_load:
            return False
        self._set(activity=Activity.LOADING)
        return True

    def load_finished(self) -> None:
        self._end(Activity.LOADING, loaded=True)

    def load_failed(self, still_loaded: bool) -> None:
        """Failed or cancelled; `still_loaded`: the model before it is still in."""
        self._end(Activity.LOADING, loaded=still_loaded)

    def unloaded(self) -> None:
        self._set(loaded=False)

    # -- the chat ---------------------------------------------------------------------------
    def reply_started(self) -> bool:
        if self._state.activity is Activity.REPLYING and self._state.loaded:
            self._replies += 1
            return True
        if not self._state.can_send:
            return False
        self._replies = 1
        self._set(activity=Activity.REPLYING)
        return True

    def reply_ended(self) -> None:
        """Finished, stopped or failed."""
        if self._state.activity is not Activity.REPLYING:
            return
        self._replies -= 1
        if self._replies <= 0:
            self._replies = 0
            self._set(activity=Activity.IDLE)

    # -- the benchmark ----------------------------------------------------------------------
    def sweep_started(self) -> bool:
        if not self._state.can_benchmark:
            return False
        self._set(activity=Activity.SWEEPING)
        return True

    def sweep_ended(self) -> None:
        self._end(Activity.SWEEPING)

    # -- independent of the activity ----------------------------------------------------------
    def serving_changed(self, serving: bool) -> None:
        self._set(serving=serving)

    def launch_changed(self, launchable: bool) -> None:
        self._set(launchable=launchable)

    # -- changing and telling ---------------------------------------------------------------
    def _end(self, activity: Activity, loaded: bool | None = None) -> None:
        ended = self._state.activity is activity
        self._set(activity=Activity.IDLE if ended else None, loaded=loaded)

    def _set(
        self,
        activity: Activity | None = None,
        loaded: bool | None = None,
        serving: bool | None = None,
        launchable: bool | None = None,
    ) -> None:
        """The given fields change (None: as they are); listeners hear of a real change."""
        old = self._state
        state = SessionState(
            old.activity if activity is None else activity,
            old.loaded if loaded is None else loaded,
            old.serving if serving is None else serving,
            old.launchable if launchable is None else launchable,
        )
        if state == old:
            return
        self._state = state
        if self._notifying:  # a listener changed it: start again with the newest state
            self._changed_while_notifying = True
            return
        self._notifying = True
        try:
            self._notify()
        finally:
            self._notifying = False

    def _notify(self) -> None:
        while True:
            self._changed_while_notifying = False
            for listener in list(self._listeners):
                listener(self._state)
                if self._changed_while_notifying:
                    break
            if not self._changed_while_notifying:
                return
