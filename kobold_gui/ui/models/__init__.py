"""The model panel: choosing a file, recent models, other apps' models, metadata."""
