"""Find a model on Hugging Face: the dialog, its tables, the token row and the download list."""
