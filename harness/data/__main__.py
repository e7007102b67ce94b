"""Entry point: python -m harness.data inspect SOURCE [--json] [--noise-threshold X]."""

import sys

from harness.data.inspect_cli import main

sys.exit(main())
