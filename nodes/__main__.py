"""``python -m nodes`` runs the ``tierwise`` command."""

import sys

from nodes.cli import main

sys.exit(main())
