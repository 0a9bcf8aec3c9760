"""Chats in SQLite: the store, its writer thread, the conversation types, search and the
import of old chat files."""
