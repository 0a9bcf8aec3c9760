"""The engine: llama.cpp loaded in this process or in a child process, streaming, Stop, and the one
worker thread with its job queue."""
