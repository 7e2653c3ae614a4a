"""Time one full QT training step per config × backend × device: see `qt_helpers.bench`."""
import sys

from qt_helpers.bench import main

if __name__ == "__main__":
    main()
    sys.exit(0)
