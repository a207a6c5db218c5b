// Writes the two files that github.com/pulumi/pulumi-kubernetes/provider/v4's
// cmd/pulumi-resource-kubernetes embeds (schema-embed.json, terraform-mapping-embed.json).
// Upstream makes them with `go generate` (its generate.go, which this mirrors) and does not
// publish them, so that package does not build from the module proxy as is. build.sh runs
// this into a temp folder, then builds .. (the same main) with the files mapped
// in through `go build -overlay`.
//
// Usage: schema <provider cmd dir> <output dir> <version>
package main

import (
	"encoding/json"
	"log"
	"os"
	"path/filepath"

	"github.com/pulumi/pulumi/pkg/v3/codegen/schema"
)

func main() {
	if len(os.Args) != 4 {
		log.Fatal("usage: k8s-schema <provider cmd dir> <output dir> <version>")
	}
	src, out, version := os.Args[1], os.Args[2], os.Args[3]

	schemaContents, err := os.ReadFile(filepath.Join(src, "schema.json"))
	if err != nil {
		log.Fatal(err)
	}
	var packageSpec schema.PackageSpec
	if err := json.Unmarshal(schemaContents, &packageSpec); err != nil {
		log.Fatalf("cannot deserialize schema: %v", err)
	}
	packageSpec.Version = version
	versionedContents, err := json.Marshal(packageSpec)
	if err != nil {
		log.Fatalf("cannot reserialize schema: %v", err)
	}
	if err := os.WriteFile(filepath.Join(out, "schema-embed.json"), versionedContents, 0o600); err != nil {
		log.Fatal(err)
	}

	terraformContents, err := os.ReadFile(filepath.Join(src, "terraform-mapping.json"))
	if err != nil {
		log.Fatal(err)
	}
	var mapping interface{}
	if err := json.Unmarshal(terraformContents, &mapping); err != nil {
		log.Fatalf("cannot deserialize terraform mapping: %v", err)
	}
	embeddedMapping, err := json.Marshal(mapping)
	if err != nil {
		log.Fatalf("cannot reserialize terraform mapping: %v", err)
	}
	if err := os.WriteFile(filepath.Join(out, "terraform-mapping-embed.json"), embeddedMapping, 0o600); err != nil {
		log.Fatal(err)
	}
}
