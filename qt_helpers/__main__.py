"""`python -m qt_helpers`: see `qt_helpers.cli`."""
import sys

from .cli import main

sys.exit(main())
