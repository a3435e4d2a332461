"""The order service: see domain.py for its rules and servicer.py for its gRPC face."""
