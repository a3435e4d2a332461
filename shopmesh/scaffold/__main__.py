"""`python -m shopmesh.scaffold NAME` (what scripts/new-service runs): see the package's docstring."""

import sys

from shopmesh.scaffold import main

sys.exit(main())
