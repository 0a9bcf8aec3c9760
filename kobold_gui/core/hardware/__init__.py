"""What the machine has: NVIDIA GPUs through NVML, llama.cpp's devices matched to them, the CPU,
and simulated GPUs for a what-if plan."""
