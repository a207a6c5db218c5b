#!/usr/bin/env bash
# Builds stripe-mock, Stripe's own API mock, which the tests run (test/support/stripe-mock.ts),
# from this folder's Go module, once, into a cache folder outside the repo keyed by its version:
#   ${WOOLLY_STRIPE_CACHE:-$HOME/.cache/woolly/stripe}/<version>/stripe-mock
# Skips the build when the binary exists. Needs Go >= 1.24 and the Go module proxy only
# (go.sum pins every module). Prints one line on stdout: the folder holding the binary.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../go-cache.sh
source "$here/../go-cache.sh"

require_go stripe/build.sh 'Go >= 1.24 is needed to build stripe-mock'
version="$(module_version "$here/go.mod" github.com/stripe/stripe-mock)"
if [[ -z "$version" ]]; then
  echo "stripe/build.sh: cannot read the github.com/stripe/stripe-mock version from $here/go.mod" >&2
  exit 1
fi
cache="${WOOLLY_STRIPE_CACHE:-$HOME/.cache/woolly/stripe}"
dest="$cache/$version"
begin_build "$cache" "$dest" stripe-mock

started=$SECONDS
echo "stripe/build.sh: building stripe-mock $version into $dest" >&2
cd "$here"
# Stamped the way stripe-mock's GoReleaser build does (it prints "stripe-mock <version>" at start).
go build -ldflags "-s -w -X main.version=$version" -o "$work/stripe-mock" github.com/stripe/stripe-mock

mkdir -p "$dest"
mv -f "$work/stripe-mock" "$dest/"
echo "stripe/build.sh: built in $((SECONDS - started)) s" >&2
echo "$dest"
