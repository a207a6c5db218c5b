// The Pulumi Kubernetes resource provider (pulumi-resource-kubernetes), built from
// github.com/pulumi/pulumi-kubernetes/provider/v4. Upstream's cmd/pulumi-resource-kubernetes
// is this same main, but it embeds two files that upstream generates with `go generate` and
// does not publish, and `go build -overlay` may not add files under GOMODCACHE. So this
// package embeds them from here: build.sh makes them with ./schema into a temp folder
// and maps them into this folder with -overlay (they are never written into the repo).
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema-embed.json
var pulumiSchema []byte

//go:embed terraform-mapping-embed.json
var terraformMapping []byte

func main() {
	provider.Serve("kubernetes", version.Version, pulumiSchema, terraformMapping)
}
