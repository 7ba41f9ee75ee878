"""`python -m benchmarks`: see benchmarks/run.py and benchmarks/README.md."""

import sys

from .run import main

sys.exit(main())
