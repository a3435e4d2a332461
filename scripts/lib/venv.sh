# Shared by the scripts: make sure .venv exists and holds this project with the extras asked
# for. Sourced, not run. Installs only when pyproject.toml changed since the last install (or
# the extras were never installed), so a second run starts at once.

ensure_venv() {
  local extras="$1"  # e.g. "dev", "mesh", or "" for the services alone
  local root python stamp hash
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  python="${PYTHON:-python3}"
  if [ ! -x "$root/.venv/bin/python" ]; then
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
      || { echo "shopmesh needs Python >= 3.11 (found $("$python" --version 2>&1)); set PYTHON=" >&2; return 1; }
    echo "creating $root/.venv" >&2
    "$python" -m venv "$root/.venv"
  fi
  stamp="$root/.venv/.shopmesh-installed"
  hash="$(sha256sum "$root/pyproject.toml" | cut -d' ' -f1)"
  # One line per installed set of extras; `dev` holds every other extra.
  if [ -f "$stamp" ] && grep -qxF -e "$hash $extras" -e "$hash dev" "$stamp"; then
    return 0
  fi
  echo "installing shopmesh${extras:+[$extras]} into .venv" >&2
  "$root/.venv/bin/python" -m pip install --quiet --upgrade pip >&2
  "$root/.venv/bin/python" -m pip install --quiet -e "$root${extras:+[$extras]}" >&2
  repair_opentelemetry_proto "$root/.venv/bin/python"
  { grep -s "^$hash " "$stamp" || true; echo "$hash $extras"; } > "$stamp.new" && mv "$stamp.new" "$stamp"
}

# xds-protos (the local mesh's envoy messages) ships a stale copy of opentelemetry-proto's
# modules under the same import path, which breaks the OTLP trace exporter (grpc/grpc#42926,
# open-telemetry/opentelemetry-python#4843). Reinstalling opentelemetry-proto puts the real ones
# back; the envoy messages only use types both copies define. tests/packaging guards this.
repair_opentelemetry_proto() {
  local python="$1" version
  "$python" -m pip show --quiet xds-protos >/dev/null 2>&1 || return 0
  version="$("$python" -m pip show opentelemetry-proto 2>/dev/null | sed -n 's/^Version: //p')"
  [ -n "$version" ] || return 0
  "$python" -m pip install --quiet --no-deps --force-reinstall "opentelemetry-proto==$version" >&2
}
