// Command image builds the operator's container image without a container
// engine: a static binary (CGO_ENABLED=0) in one layer on an empty base,
// run as user 65532, written as an OCI image layout archive (which
// `docker load`, `podman load` and `skopeo copy oci-archive:` read).
//
//	go run ./hack/image --out bin/image.tar --tag metrics-operator:0.1.0
//
// It starts from scratch because the build machines reach no image
// registry; the layer holds only what the binary needs at run time: the
// binary, /etc/passwd and /etc/group naming the user, and the build
// machine's CA bundle for DataSinks served with public certificates.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
)

func main() {
	var o Options
	flag.StringVar(&o.Out, "out", "bin/image.tar", "Where the OCI image layout archive is written.")
	flag.StringVar(&o.Tag, "tag", "metrics-operator:dev", "Name the image carries in the archive (org.opencontainers.image.ref.name and docker's RepoTags).")
	flag.StringVar(&o.Arch, "arch", runtime.GOARCH, "Architecture the binary is built for (GOARCH).")
	flag.StringVar(&o.Package, "package", "./cmd/metrics-operator", "Go package of the binary.")
	flag.StringVar(&o.CABundle, "ca-bundle", DefaultCABundle, "CA certificates copied into the image; empty leaves them out.")
	flag.StringVar(&o.Version, "version", "dev", "Version recorded in the image's labels.")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	digest, err := Build(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
	fmt.Printf("%s: %s %s/%s %s\n", o.Out, o.Tag, "linux", o.Arch, digest)
}
