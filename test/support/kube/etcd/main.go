// etcd built from go.etcd.io/etcd/server/v3 (the etcd command's own main does the same).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
