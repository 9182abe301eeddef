"""``python -m busviewer`` is the same as the ``busviewer`` command."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # decoder processes of a frozen (PyInstaller) build
    from busviewer.cli import main

    sys.exit(main())
