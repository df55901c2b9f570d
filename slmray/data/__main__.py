"""`python -m slmray.data`: the command line in `slmray.data.cli`, parsed before torch loads."""

import sys

from slmray.data.cli import main

sys.exit(main())
