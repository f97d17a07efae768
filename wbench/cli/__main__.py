"""``python -m wbench.cli``: the ``wbench`` command."""

import sys

from wbench.cli.main import main

sys.exit(main())
