#!/usr/bin/env bash
# Builds the `pulumi` CLI and the Pulumi Kubernetes resource provider the tests run from
# this folder's two Go modules (cli/ and kubernetes/), once, into a cache folder outside the repo keyed by both versions:
#   ${WOOLLY_PULUMI_CACHE:-$HOME/.cache/woolly/pulumi}/<pulumi>-k8s-<provider>/bin/{pulumi,pulumi-resource-kubernetes}
# Skips the build when both binaries exist. Needs Go >= 1.26.6 and the Go module proxy only
# (go.sum pins every module). Prints one line on stdout: the Pulumi root, the folder whose bin/ holds the binaries (the
# layout `PulumiCommand.get({ root })` and WOOLLY_PULUMI_ROOT expect).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../go-cache.sh
source "$here/../go-cache.sh"

require_go pulumi/build.sh 'Go >= 1.26.6 is needed to build pulumi and its kubernetes provider'
# The versions come from the two go.mod files.
pulumi_version="$(module_version "$here/cli/go.mod" github.com/pulumi/pulumi/pkg/v3)"
sdk_version="$(module_version "$here/cli/go.mod" github.com/pulumi/pulumi/sdk/v3)"
k8s_version="$(module_version "$here/kubernetes/go.mod" github.com/pulumi/pulumi-kubernetes/provider/v4)"
if [[ -z "$pulumi_version" || -z "$k8s_version" ]]; then
  echo "pulumi/build.sh: cannot read the pulumi pkg/v3 version from $here/cli/go.mod or the pulumi-kubernetes provider/v4 version from $here/kubernetes/go.mod" >&2
  exit 1
fi
if [[ "$sdk_version" != "$pulumi_version" ]]; then
  echo "pulumi/build.sh: cli/go.mod has pulumi pkg/v3 $pulumi_version but sdk/v3 $sdk_version; they must be the same release" >&2
  exit 1
fi
cache="${WOOLLY_PULUMI_CACHE:-$HOME/.cache/woolly/pulumi}"
dest="$cache/$pulumi_version-k8s-$k8s_version"
begin_build "$cache" "$dest" bin/pulumi bin/pulumi-resource-kubernetes

started=$SECONDS
echo "pulumi/build.sh: building pulumi $pulumi_version and pulumi-resource-kubernetes $k8s_version into $dest (takes minutes the first time)" >&2
cd "$here/cli"

# The CLI, stamped the way pulumi's own Makefile does (`pulumi version` prints it).
go build -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$pulumi_version" \
  -o "$work/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi

cd "$here/kubernetes"
# Upstream's cmd/pulumi-resource-kubernetes embeds schema-embed.json and
# terraform-mapping-embed.json, which upstream generates (`go generate`) and does not
# publish, and -overlay may not add files under GOMODCACHE. So ./schema (upstream's
# generate.go) writes them into the temp folder and this module's main package (upstream's
# main.go) embeds them through an overlay. The provider reports (and stamps into its schema) its
# version without the leading "v".
provider_version="${k8s_version#v}"
provider_dir="$(go list -f '{{.Dir}}' github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version)"
provider_cmd="${provider_dir%/pkg/version}/cmd/pulumi-resource-kubernetes"
go build -o "$work/k8s-schema" ./schema
"$work/k8s-schema" "$provider_cmd" "$work" "$provider_version"
cat >"$work/overlay.json" <<JSON
{"Replace": {
  "$here/kubernetes/schema-embed.json": "$work/schema-embed.json",
  "$here/kubernetes/terraform-mapping-embed.json": "$work/terraform-mapping-embed.json"
}}
JSON
go build -overlay "$work/overlay.json" \
  -ldflags "-s -w -X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$provider_version" \
  -o "$work/pulumi-resource-kubernetes" .

mkdir -p "$dest/bin"
mv -f "$work/pulumi" "$work/pulumi-resource-kubernetes" "$dest/bin/"
echo "pulumi/build.sh: built in $((SECONDS - started)) s" >&2
echo "$dest"
