"""Time one full QT training step per config × backend × device: see `qtbook.bench`."""
import sys

from qtbook.bench import main

if __name__ == "__main__":
    main()
    sys.exit(0)
