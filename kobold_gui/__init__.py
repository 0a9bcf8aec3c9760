"""kobold-gui: a desktop launcher and chat app for local GGUF models."""

__version__ = "0.1.0"
