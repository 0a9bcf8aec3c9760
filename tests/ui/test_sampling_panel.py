"""The chat's sampling panel offers llama.cpp's other samplers (issue 26: the same ones the
APIs take), and a reply follows them: a grammar set there constrains the real model's
output, and what was set is kept with the chat on disk and shown again when it is opened."""

from __future__ import annotations

from pathlib import Path

from pytestqt.qtbot import QtBot

from kobold_gui.core.engine.types import SamplingParams
from kobold_gui.ui.chat.sampling_panel import MORE_SAMPLERS, params_from_dict
from tests.ui.test_conversations import ready_window, saved, say

YES_NO = 'root ::= "yes" | "no"'


def test_more_samplers_reach_the_reply_and_stay_with_the_chat(
    qtbot: QtBot, tiny_model: Path
) -> None:
    window = ready_window(qtbot, tiny_model)
    panel = window.sampling_panel
    assert not panel.more.isVisibleTo(panel)  # folded away until asked for
    panel.more_button.click()
    assert panel.more.isVisibleTo(panel)
    assert set(panel.extra) == {name for name, *_ in MORE_SAMPLERS}
    panel.extra["dry_multiplier"].setValue(0.8)
    panel.extra["mirostat"].setValue(2)
    panel.grammar.setText(YES_NO)
    panel.grammar.editingFinished.emit()
    assert window.sampling.dry_multiplier == 0.8 and window.sampling.mirostat == 2
    assert window.sampling.grammar == YES_NO
    for seed in (1, 2):
        panel.seed.setValue(seed)
        say(qtbot, window, "Tell me a story.")
        assert window.chat.history[-1].content in ("yes", "no")
    chat = window.conversations.conversation.id
    window.chat.new_chat()  # a new chat starts from these settings; changed here only
    panel.extra["mirostat"].setValue(0)
    panel.grammar.setText("")
    panel.grammar.editingFinished.emit()
    assert window.sampling.grammar == "" and window.sampling.mirostat == 0
    window.conversations.open(chat)
    assert panel.grammar.text() == YES_NO and panel.extra["mirostat"].value() == 2
    assert saved(window).messages[-1].content in ("yes", "no")
    window.close()


def test_saved_sampling_comes_back_with_its_tuples() -> None:
    """JSON keeps lists where the settings hold tuples: read back, they compare equal."""
    params = SamplingParams(
        stop=("###",), dry_sequence_breakers=("\n",), logit_bias=((5, -1.0),), temperature=3.0
    )
    as_json = {
        "stop": ["###"], "dry_sequence_breakers": ["\n"], "logit_bias": [[5, -1.0]],
        "temperature": 3.0, "unknown": 1,
    }  # fmt: skip
    assert params_from_dict(as_json) == params
