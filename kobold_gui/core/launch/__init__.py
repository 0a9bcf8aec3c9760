"""Launch settings: the option table, the batch rule, one launch resolved from the settings and the
hardware, and the launch state the window shows."""
