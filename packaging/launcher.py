"""The bundle's entry point (PyInstaller runs this file)."""

import sys

from kobold_gui.__main__ import main

sys.exit(main())
