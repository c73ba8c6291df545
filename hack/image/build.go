package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's fixed properties.
const (
	// Entrypoint is the binary's path in the image.
	Entrypoint = "/metrics-operator"
	// User is the numeric user and group the operator runs as: not root,
	// and the same as distroless' "nonroot", which the chart's
	// securityContext names.
	User = "65532:65532"
	// DefaultCABundle is where Debian, Ubuntu and Alpine keep the CA
	// bundle, and the first place Go looks for it on Linux.
	DefaultCABundle = "/etc/ssl/certs/ca-certificates.crt"
)

// Options says what to build.
type Options struct {
	// Out is the archive's path.
	Out string
	// Tag names the image in the archive.
	Tag string
	// Arch is the GOARCH of the binary and the image.
	Arch string
	// Package is the Go package of the binary, built in Dir (default: the
	// current directory).
	Package, Dir string
	// CABundle is copied to DefaultCABundle in the image when set.
	CABundle string
	// Version is recorded in the labels.
	Version string
}

// epoch is the time every file and the image carry, so that the same
// sources give the same image digest.
var epoch = time.Unix(0, 0).UTC()

// Build compiles the binary, builds the image and writes the archive; it
// returns the image's manifest digest.
func Build(ctx context.Context, o Options) (v1.Hash, error) {
	dir, err := os.MkdirTemp("", "metrics-operator-image")
	if err != nil {
		return v1.Hash{}, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	bin := filepath.Join(dir, "metrics-operator")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, o.Package)
	cmd.Dir = o.Dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+o.Arch)
	if out, err := cmd.CombinedOutput(); err != nil {
		return v1.Hash{}, fmt.Errorf("go build %s: %w\n%s", o.Package, err, out)
	}
	img, err := Image(bin, o)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := WriteArchive(img, o.Tag, o.Out, filepath.Join(dir, "layout")); err != nil {
		return v1.Hash{}, err
	}
	return img.Digest()
}

// Image assembles the image around the binary at bin.
func Image(bin string, o Options) (v1.Image, error) {
	files := []file{
		{path: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{path: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnonroot:x:65532:\n")},
		{path: "home/nonroot/", mode: 0o700, uid: 65532, gid: 65532},
		{path: "tmp/", mode: 0o1777},
	}
	if o.CABundle != "" {
		ca, err := os.ReadFile(o.CABundle)
		if err != nil {
			return nil, fmt.Errorf("reading the CA bundle: %w", err)
		}
		files = append(files, file{path: DefaultCABundle[1:], mode: 0o644, data: ca})
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	files = append(files, file{path: Entrypoint[1:], mode: 0o755, data: data})
	layerTar, err := tarOf(files)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{
		Created: v1.Time{Time: epoch}, CreatedBy: "hack/image: " + Entrypoint + " (CGO_ENABLED=0 go build -trimpath)",
	}})
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", o.Arch
	cfg.Created = v1.Time{Time: epoch}
	cfg.Config.Entrypoint = []string{Entrypoint}
	cfg.Config.User = User
	cfg.Config.WorkingDir = "/"
	cfg.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "SSL_CERT_FILE=" + DefaultCABundle}
	cfg.Config.Labels = map[string]string{
		"org.opencontainers.image.title":   "metrics-operator",
		"org.opencontainers.image.source":  "https://github.com/SAP/metrics-operator",
		"org.opencontainers.image.version": o.Version,
	}
	return mutate.ConfigFile(img, cfg)
}

// file is one entry of the layer; a path ending in / is a directory.
type file struct {
	path     string
	mode     int64
	uid, gid int
	data     []byte
}

// tarOf writes files, with their parent directories, as a layer tar.
func tarOf(files []file) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	written := map[string]bool{}
	var writeDir func(d string) error
	writeDir = func(d string) error {
		if d == "." || written[d] {
			return nil
		}
		if err := writeDir(filepath.Dir(d)); err != nil {
			return err
		}
		written[d] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX})
	}
	for _, f := range files {
		clean := filepath.Clean(f.path)
		if err := writeDir(filepath.Dir(clean)); err != nil {
			return nil, err
		}
		h := &tar.Header{Name: clean, Mode: f.mode, Uid: f.uid, Gid: f.gid, ModTime: epoch, Format: tar.FormatPAX}
		if f.path[len(f.path)-1] == '/' {
			h.Typeflag, h.Name = tar.TypeDir, clean+"/"
			written[clean] = true
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), tw.Close()
}

// WriteArchive writes img as an OCI image layout (in scratch, a directory
// that must not exist) and packs it into the tar archive out, with
// docker's manifest.json beside index.json so that `docker load` reads it
// too.
func WriteArchive(img v1.Image, tag, out, scratch string) error {
	p, err := layout.Write(scratch, empty.Index)
	if err != nil {
		return err
	}
	// The index entry is written by hand: AppendImage would mark the
	// image as an artifact (artifactType), which it is not.
	if err := p.WriteImage(img); err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	size, err := img.Size()
	if err != nil {
		return err
	}
	mt, err := img.MediaType()
	if err != nil {
		return err
	}
	if err := p.AppendDescriptor(v1.Descriptor{MediaType: mt, Size: size, Digest: digest, Annotations: map[string]string{
		"org.opencontainers.image.ref.name": tag,
		"io.containerd.image.name":          tag,
	}}); err != nil {
		return err
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	dockerManifest := []map[string]any{{"Config": blobPath(cfgName), "RepoTags": []string{tag}, "Layers": []string{}}}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		dockerManifest[0]["Layers"] = append(dockerManifest[0]["Layers"].([]string), blobPath(d))
	}
	mj, err := json.Marshal(dockerManifest)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(scratch, "manifest.json"), mj, 0o644); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	tmp := out + ".tmp"
	if err := tarDir(scratch, tmp); err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	return os.Rename(tmp, out)
}

func blobPath(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }

// tarDir packs dir's files, in lexical order, into the tar file out.
func tarDir(dir, out string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		h := &tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, ModTime: epoch, Format: tar.FormatPAX}
		if d.IsDir() {
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, h.Name+"/", 0o755
			return tw.WriteHeader(h)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		h.Typeflag, h.Size = tar.TypeReg, int64(len(data))
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	return errors.Join(err, tw.Close(), f.Close())
}
