"""The local API: KoboldAI- and OpenAI-compatible HTTP endpoints on the loaded model.

It imports the core (the engine worker and its types), never the widgets; the window and
the headless command both start it through `runner.ApiServer`."""
