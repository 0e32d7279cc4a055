"""``python -m passt.cli``: the ``passt`` command (as under ``torchrun -m passt.cli``)."""

import sys

from passt.cli.commands import main

sys.exit(main())
