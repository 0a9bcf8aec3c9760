"""kobold-gui: a desktop launcher and chat app for local GGUF models."""

import os

from kobold_gui.native_first import load_llama_library

__version__ = "0.1.0"

# CUDA numbers GPUs fastest first unless told otherwise; NVML (and the window) by PCI bus.
# Set before anything loads CUDA, as KoboldCPP does; a user's own setting is kept.
os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
load_llama_library()  # before numpy: see native_first.py
