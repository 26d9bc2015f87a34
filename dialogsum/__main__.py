"""``python -m dialogsum``: the command line (also what ``torchrun -m dialogsum`` runs)."""

import sys

from dialogsum.cli import main

sys.exit(main())
