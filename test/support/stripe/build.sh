#!/usr/bin/env bash
# Builds stripe-mock, Stripe's own API mock, which the tests run (test/support/stripe-mock.ts),
# from this folder's Go module, once, into a cache folder outside the repo keyed by its version:
#   ${WOOLLY_STRIPE_CACHE:-$HOME/.cache/woolly/stripe}/<version>/stripe-mock
# Skips the build when the binary exists. Needs Go >= 1.24 and the Go module proxy only
# (go.sum pins every module). Prints one line on stdout: the folder holding the binary.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if ! command -v go >/dev/null 2>&1; then
  echo "stripe/build.sh: the 'go' command is missing (Go >= 1.24 is needed to build stripe-mock)" >&2
  exit 1
fi

# The version comes from go.mod, which stripe-mock.ts reads the same way.
module_version() {
  awk -v m="$1" '$1 != "//" { for (i = 1; i < NF; i++) if ($i == m && $(i + 1) ~ /^v[0-9]/) { print $(i + 1); exit } }' "$here/go.mod"
}
version="$(module_version github.com/stripe/stripe-mock)"
if [[ -z "$version" ]]; then
  echo "stripe/build.sh: cannot read the github.com/stripe/stripe-mock version from $here/go.mod" >&2
  exit 1
fi

# CI may run without HOME; Go needs one for its caches, and Node's os.homedir() (which
# stripe-mock.ts uses to find the binary) falls back to the same passwd entry.
export HOME="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"
cache="${WOOLLY_STRIPE_CACHE:-$HOME/.cache/woolly/stripe}"
dest="$cache/$version"

if [[ -x "$dest/stripe-mock" ]]; then
  echo "$dest"
  exit 0
fi

mkdir -p "$cache"
# One build at a time per cache (a second caller waits, then finds the binary).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$cache/.lock"
  flock 9
  if [[ -x "$dest/stripe-mock" ]]; then
    echo "$dest"
    exit 0
  fi
fi

work="$(mktemp -d "$cache/.build.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# The machine's Go module proxy setting; no toolchain download, no VCS stamping (the module
# lives inside the project's git checkout), go.sum must already hold every hash.
export GOFLAGS="-buildvcs=false -mod=readonly -trimpath"

started=$SECONDS
echo "stripe/build.sh: building stripe-mock $version into $dest" >&2
cd "$here"
# Stamped the way stripe-mock's GoReleaser build does (it prints "stripe-mock <version>" at start).
go build -ldflags "-s -w -X main.version=$version" -o "$work/stripe-mock" github.com/stripe/stripe-mock

mkdir -p "$dest"
mv -f "$work/stripe-mock" "$dest/"
echo "stripe/build.sh: built in $((SECONDS - started)) s" >&2
echo "$dest"
