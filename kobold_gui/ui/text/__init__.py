"""Wording for people, without Qt so that it is tested without a display: plan and machine
summaries, the backend line."""
