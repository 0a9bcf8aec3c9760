"""The batch sweep: (n_batch, n_ubatch) pairs measured on the loaded model, and the measured choice
kept per machine and model."""
