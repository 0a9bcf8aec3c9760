"""The Qt layer: widgets only. Each panel is a file; the window composes them."""
