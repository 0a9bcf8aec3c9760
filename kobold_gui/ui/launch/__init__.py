"""The launch settings panel, the BLAS batch slider, the memory-plan view with its split editor,
the load bar."""
