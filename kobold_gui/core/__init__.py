"""The Qt-free core: everything the CLI and the window share. Nothing below imports Qt."""
