"""Hugging Face: search, file lists, GGUF headers by range requests, verified resumable downloads,
the access token, and how a file would fit here."""
