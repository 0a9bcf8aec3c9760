"""The Server tab: serving the loaded model over the KoboldAI and OpenAI APIs."""
