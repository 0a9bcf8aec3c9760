"""The Qt adapter over the engine's worker: its events as signals on the GUI thread."""
