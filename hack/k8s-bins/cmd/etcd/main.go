// Command etcd is upstream etcd's own main, built at the etcd version that
// k8s.io/kubernetes selects (see ../../go.mod). Test tooling only.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
