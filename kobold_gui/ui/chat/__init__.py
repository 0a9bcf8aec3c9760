"""The chat: the panel, the conversation controller, the chat list, sampling settings, rendering of
replies."""
