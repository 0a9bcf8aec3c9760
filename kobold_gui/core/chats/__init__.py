"""Chats on disk: the store, its writer thread and the conversation types."""
