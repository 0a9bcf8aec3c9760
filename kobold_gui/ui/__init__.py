"""The Qt layer: panels by area over the core; the window composes them."""
