"""``python -m distill`` is the same as the ``distill`` command."""
import sys

from distill.cli import main

sys.exit(main())
