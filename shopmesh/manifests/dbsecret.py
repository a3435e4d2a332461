"""The Secret `postgres-credentials` (namespace shop): one fresh password per declared service,
plus PostgreSQL's superuser's. `scripts/gen-db-secret | kubectl apply -f -` applies it.

Its keys are the single list of databases: each `<service>-password` is read by that service's
Deployment (`secretKeyRef`) and, mounted as a file, by PostgreSQL's init script
(k8s/base/postgres/10-shopmesh-databases.sh), which creates one role and database per key. A
new service declared in services/<name>/declaration.py gets its database with no edit here.
The passwords are URL-safe, so they go into SHOPMESH_DATABASE_URL unescaped.
"""

from __future__ import annotations

import secrets
import sys

import yaml

from services.runtime.registry import declarations

NAME, NAMESPACE = "postgres-credentials", "shop"
SUPERUSER_KEY = "postgres-password"
#: 32 random bytes, 43 URL-safe characters.
PASSWORD_BYTES = 32


def password_key(service: str) -> str:
    return f"{service}-password"


def keys() -> list[str]:
    return [SUPERUSER_KEY, *(password_key(name) for name in declarations())]


def secret() -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        "type": "Opaque",
        "stringData": {key: secrets.token_urlsafe(PASSWORD_BYTES) for key in keys()},
    }


def main() -> int:
    sys.stdout.write(yaml.safe_dump(secret(), sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
