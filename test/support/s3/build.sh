#!/usr/bin/env bash
# Builds gofakes3 (github.com/johannesboyne/gofakes3, an in-memory S3-compatible server),
# which the storage sampler's tests list buckets on (test/support/s3-server.ts), from this
# folder's Go module, once, into a cache folder outside the repo keyed by its version:
#   ${WOOLLY_S3_CACHE:-$HOME/.cache/woolly/s3}/<version>/gofakes3
# Skips the build when the binary exists. Needs Go >= 1.24 and the Go module proxy only
# (go.sum pins every module; about 1 minute cold). Prints one line on stdout: the folder
# holding the binary.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../go-cache.sh
source "$here/../go-cache.sh"

require_go s3/build.sh 'Go >= 1.24 is needed to build gofakes3'
version="$(module_version "$here/go.mod" github.com/johannesboyne/gofakes3)"
if [[ -z "$version" ]]; then
  echo "s3/build.sh: cannot read the github.com/johannesboyne/gofakes3 version from $here/go.mod" >&2
  exit 1
fi
cache="${WOOLLY_S3_CACHE:-$HOME/.cache/woolly/s3}"
dest="$cache/$version"
begin_build "$cache" "$dest" gofakes3

started=$SECONDS
echo "s3/build.sh: building gofakes3 $version into $dest" >&2
cd "$here"
go build -ldflags "-s -w" -o "$work/gofakes3" github.com/johannesboyne/gofakes3/cmd/gofakes3

mkdir -p "$dest"
mv -f "$work/gofakes3" "$dest/"
echo "s3/build.sh: built in $((SECONDS - started)) s" >&2
echo "$dest"
