"""`python -m services.order`: serve the order service (configuration from the environment)."""

from services.order.service import DEFINITION
from services.runtime.server import main

if __name__ == "__main__":
    main(DEFINITION)
