"""Model files on disk: GGUF headers and metadata, the default model, and other apps' model
folders."""
