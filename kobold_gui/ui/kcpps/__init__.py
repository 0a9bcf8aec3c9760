"""The KoboldCPP menu: import and save .kcpps files."""
