"""KoboldCPP settings files (.kcpps/.kcppt): import and export, key names across versions, GPU
fields."""
