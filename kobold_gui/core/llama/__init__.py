"""llama.cpp's native libraries: loading them, the build's backend, llama.cpp's log and its buffer
report."""
