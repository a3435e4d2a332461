"""`python -m services.payment`: serve the payment service (configuration from the environment)."""

from services.payment.service import DEFINITION
from services.runtime.server import main

if __name__ == "__main__":
    main(DEFINITION)
