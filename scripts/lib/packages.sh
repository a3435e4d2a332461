# Shared by the scripts: the Debian packages the project needs besides Python's. Sourced, not
# run. Each need has a check (is it there?), and ensure_debian_package installs the package
# only when its check fails.

has_postgresql_server() {  # the tests and `scripts/up --postgres` start a real PostgreSQL
  compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null
}

has_prometheus() {  # the local mesh's Prometheus, and promtool for the tests
  command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1
}

# ensure_debian_package PACKAGE WHY CHECK: nothing if CHECK succeeds; otherwise installs
# PACKAGE with apt-get (through sudo unless root) and runs CHECK again. Fails with one line
# saying what to do when it cannot.
ensure_debian_package() {
  local package="$1" why="$2" check="$3" sudo_if_needed=""
  "$check" && return 0
  echo "installing $package ($why)" >&2
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "cannot install $package: no apt-get here; install it with your package manager" >&2
    return 1
  fi
  if [ "${EUID:-$(id -u)}" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "cannot install $package: not root and no sudo; run: apt-get install $package" >&2
      return 1
    fi
    sudo_if_needed="sudo"
  fi
  if ! $sudo_if_needed apt-get update -qq \
    || ! $sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null; then
    echo "cannot install $package with apt-get (its error is above); install it, then retry" >&2
    return 1
  fi
  if ! "$check"; then
    echo "apt-get installed $package, but it is still not found: is /usr/bin on PATH?" >&2
    return 1
  fi
}
