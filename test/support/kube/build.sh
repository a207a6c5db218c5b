#!/usr/bin/env bash
# Builds the kube-apiserver and etcd the tests run (test/support/kube-server.ts) from this
# folder's Go module, once, into a cache folder outside the repo keyed by both versions:
#   ${WOOLLY_KUBE_CACHE:-$HOME/.cache/woolly/kube}/<kubernetes>-etcd-<etcd>/{kube-apiserver,etcd}
# Skips the build when both binaries exist. Needs Go >= 1.25 and the Go module proxy only
# (go.sum pins every module). Prints one line on stdout: the folder holding the binaries.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../go-cache.sh
source "$here/../go-cache.sh"

require_go kube/build.sh 'Go >= 1.25 is needed to build kube-apiserver and etcd'
kube_version="$(module_version "$here/go.mod" k8s.io/kubernetes)"
etcd_version="$(module_version "$here/go.mod" go.etcd.io/etcd/server/v3)"
if [[ -z "$kube_version" || -z "$etcd_version" ]]; then
  echo "kube/build.sh: cannot read the k8s.io/kubernetes and etcd versions from $here/go.mod" >&2
  exit 1
fi
cache="${WOOLLY_KUBE_CACHE:-$HOME/.cache/woolly/kube}"
dest="$cache/$kube_version-etcd-$etcd_version"
begin_build "$cache" "$dest" kube-apiserver etcd

minor="${kube_version#v1.}"
minor="${minor%%.*}"
version_flags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  version_flags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  version_flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

started=$SECONDS
echo "kube/build.sh: building kube-apiserver $kube_version and etcd $etcd_version into $dest (takes minutes the first time)" >&2
cd "$here"
go build -ldflags "-s -w$version_flags" -o "$work/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
go build -ldflags "-s -w" -o "$work/etcd" ./etcd

mkdir -p "$dest"
mv -f "$work/kube-apiserver" "$work/etcd" "$dest/"
echo "kube/build.sh: built in $((SECONDS - started)) s" >&2
echo "$dest"
