"""`python -m slmray.cluster`: check cluster files (`slmray.cluster.files.main`)."""

import sys

from slmray.cluster.files import main

sys.exit(main())
