"""``python -m busviewer`` is the same as the ``busviewer`` command."""

import sys

from busviewer.cli import main

sys.exit(main())
