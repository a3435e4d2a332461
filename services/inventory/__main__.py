"""`python -m services.inventory`: serve the inventory service (configuration from the environment)."""

from services.inventory.service import DEFINITION
from services.runtime.server import main

if __name__ == "__main__":
    main(DEFINITION)
