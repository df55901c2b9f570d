"""`python -m slmray.train`: the command line in `slmray.train.cli`, parsed before torch loads."""

import sys

from slmray.train.cli import main

sys.exit(main())
