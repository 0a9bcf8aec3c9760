"""Other machines' devices through llama.cpp's RPC backend: checking a machine from Python, the
machine list, the RPC client and server."""
