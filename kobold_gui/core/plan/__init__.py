"""The memory plan: weights, KV cache and compute buffers per device before loading, and
llama.cpp's own estimate to check it against."""
