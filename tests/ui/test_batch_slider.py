from __future__ import annotations

from pytestqt.qtbot import QtBot

from kobold_gui.core.launch.batching import BLAS_STOPS
from kobold_gui.ui.launch.launch_panel import LaunchPanel


def test_label_updates_while_the_slider_is_dragged(qtbot: QtBot) -> None:
    panel = LaunchPanel()
    qtbot.addWidget(panel)
    slider = panel.batch.slider
    assert panel.batch.effective_label.text() == "BLAS 512 → n_batch 512, n_ubatch 512"
    slider.setSliderDown(True)  # the user holds the handle
    slider.setSliderPosition(BLAS_STOPS.index(2048))
    assert slider.isSliderDown()
    assert panel.batch.effective_label.text() == (
        "BLAS 2048 → n_batch 2048, n_ubatch 1024 (capped at 1024)"
    )
    slider.setSliderPosition(BLAS_STOPS.index(64))
    assert panel.batch.effective_label.text() == "BLAS 64 → n_batch 64, n_ubatch 64"
    slider.setSliderDown(False)
    assert panel.config().blasbatchsize == 64


def test_small_context_clamps_the_label(qtbot: QtBot) -> None:
    panel = LaunchPanel()
    qtbot.addWidget(panel)
    panel.batch.set_blas(2048)
    panel.context.setValue(1024)
    assert panel.batch.effective_label.text().startswith("BLAS 2048 → n_batch 1024, n_ubatch 1024")
    assert "limited to the context size 1024" in panel.batch.effective_label.text()


def test_tied_policy_changes_the_label(qtbot: QtBot) -> None:
    panel = LaunchPanel()
    qtbot.addWidget(panel)
    panel.batch.set_blas(4096)
    panel.policy.setCurrentIndex(panel.policy.findData("tied"))
    assert panel.batch.effective_label.text() == "BLAS 4096 → n_batch 4096, n_ubatch 4096"
    assert panel.config().batchpolicy == "tied"


def test_widget_ranges_come_from_the_option_table(qtbot: QtBot) -> None:
    from kobold_gui.core.launch.options import OPTIONS_BY_NAME

    panel = LaunchPanel()
    qtbot.addWidget(panel)
    ctx = OPTIONS_BY_NAME["contextsize"]
    assert (panel.context.minimum(), panel.context.maximum()) == (ctx.minimum, ctx.maximum)
    assert panel.gpu_layers.minimum() == -1 and panel.gpu_layers.specialValueText() == "auto"


def test_every_launch_setting_survives_a_round_trip(qtbot: QtBot) -> None:
    from kobold_gui.core.launch.options import LaunchConfig
    from kobold_gui.core.launch.values import GpuSelection

    panel = LaunchPanel()
    qtbot.addWidget(panel)
    config = LaunchConfig(
        blasbatchsize=2048,
        batchpolicy="tied",
        contextsize=8192,
        gpulayers=20,
        gpus=GpuSelection((0, 1)),
        maingpu=1,
        tensor_split=(3.0, 1.0),
        splitmode="row",
        kvtype="q8_0",
        kvoffload="off",
        vrammargin=1024,
        threads=3,
        flashattention="on",
    )
    panel.set_config(config)
    assert panel.config() == config
    panel.kvtype.setCurrentIndex(panel.kvtype.findData("q4_0"))
    assert panel.config().kvtype == "q4_0" and panel.config().tensor_split == (3.0, 1.0)


def test_a_value_between_stops_sits_on_the_stop_below_and_launches_as_given(
    qtbot: QtBot,
) -> None:
    from kobold_gui.core.launch.options import LaunchConfig

    panel = LaunchPanel()
    qtbot.addWidget(panel)
    panel.set_config(LaunchConfig(blasbatchsize=1000))  # e.g. from a .kcpps
    assert panel.batch.blas() == 512  # the stop a .kcpps would save
    assert panel.batch.effective_label.text() == "BLAS 1000 → n_batch 1000, n_ubatch 1000"
    assert panel.config().blasbatchsize == 1000  # showing it changed nothing
