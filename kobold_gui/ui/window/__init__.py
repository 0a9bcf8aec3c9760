"""The main window: builds the panels, wires them, keeps its layout."""
