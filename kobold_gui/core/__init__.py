"""The Qt-free core, by area: what the app knows and does, for the window, the CLI and the API
alike."""
