# Shared by scripts/up and scripts/test: make sure .venv exists and holds this project with the
# extras asked for. Sourced, not run. Reinstalls only when pyproject.toml changed since the last
# install, so a second run starts at once.

ensure_venv() {
  local extras="$1"  # e.g. "dev" or "" for the runtime only
  local root python stamp want
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  python="${PYTHON:-python3}"
  if [ ! -x "$root/.venv/bin/python" ]; then
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
      || { echo "shopmesh needs Python >= 3.11 (found $("$python" --version 2>&1)); set PYTHON=" >&2; return 1; }
    echo "creating $root/.venv" >&2
    "$python" -m venv "$root/.venv"
  fi
  stamp="$root/.venv/.shopmesh-installed"
  want="$(sha256sum "$root/pyproject.toml" | cut -d' ' -f1) extras=$extras"
  # A stamp for a larger set of extras (dev includes test) also satisfies a smaller one.
  if [ -f "$stamp" ] && { [ "$(cat "$stamp")" = "$want" ] || { [ -z "$extras" ] && grep -q "^${want%% *} " "$stamp"; }; }; then
    return 0
  fi
  echo "installing shopmesh${extras:+[$extras]} into .venv" >&2
  "$root/.venv/bin/python" -m pip install --quiet --upgrade pip >&2
  "$root/.venv/bin/python" -m pip install --quiet -e "$root${extras:+[$extras]}" >&2
  echo "$want" > "$stamp"
}
