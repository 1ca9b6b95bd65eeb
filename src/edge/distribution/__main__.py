import sys

from edge.distribution.cli import main

sys.exit(main())
