"""One module per `shopmesh` subcommand; each exposes `register(subparsers)`."""
