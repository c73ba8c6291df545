package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// TestImageArchive builds the image as `make image` does and reads the
// archive back: one image, named by the tag, whose config runs
// /metrics-operator as a non-root user on linux/GOARCH, and whose layer
// holds a static binary that is the operator.
func TestImageArchive(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the operator statically")
	}
	out := filepath.Join(t.TempDir(), "image.tar")
	const tag = "metrics-operator:test"
	digest, err := Build(t.Context(), Options{Out: out, Tag: tag, Arch: runtime.GOARCH, Package: "./cmd/metrics-operator",
		Dir: filepath.Join("..", ".."), CABundle: caBundleIfPresent(), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(out); err == nil {
		t.Logf("%s: %d MiB, manifest %s", out, st.Size()>>20, digest)
	}
	dir := untar(t, out)

	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Digest != digest || im.Manifests[0].ArtifactType != "" ||
		im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != tag {
		t.Fatalf("index.json lists %+v, want the one image %s named %s", im.Manifests, digest, tag)
	}
	img, err := idx.Image(digest)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Config.Entrypoint; len(got) != 1 || got[0] != "/metrics-operator" {
		t.Errorf("entrypoint %v, want [/metrics-operator]", got)
	}
	if cfg.OS != "linux" || cfg.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s, want linux/%s", cfg.OS, cfg.Architecture, runtime.GOARCH)
	}
	uid, gid, ok := strings.Cut(cfg.Config.User, ":")
	if u, err := strconv.Atoi(uid); !ok || err != nil || u == 0 || gid == "0" {
		t.Errorf("user %q, want a numeric non-root user and group (Kubernetes' runAsNonRoot needs a number)", cfg.Config.User)
	}
	checkDockerManifest(t, dir, img, tag)

	bin := binaryOf(t, img)
	checkStatic(t, bin)
	path := filepath.Join(t.TempDir(), "metrics-operator")
	if err := os.WriteFile(path, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	help, _ := exec.Command(path, "--help").CombinedOutput()
	if !bytes.Contains(help, []byte("-default-service-account")) {
		t.Errorf("the image's binary is not the operator: --help says\n%s", help)
	}
}

func caBundleIfPresent() string {
	if _, err := os.Stat(DefaultCABundle); err == nil {
		return DefaultCABundle
	}
	return ""
}

// checkDockerManifest checks that manifest.json names the same config and
// layers as the OCI manifest, for `docker load`.
func checkDockerManifest(t *testing.T, dir string, img v1.Image, tag string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dm []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(data, &dm); err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(dm) != 1 || dm[0].Config != blobPath(m.Config.Digest) || len(dm[0].Layers) != len(m.Layers) ||
		len(dm[0].RepoTags) != 1 || dm[0].RepoTags[0] != tag {
		t.Fatalf("manifest.json %+v does not match the OCI manifest %+v", dm, m)
	}
	for i, l := range m.Layers {
		if dm[0].Layers[i] != blobPath(l.Digest) {
			t.Errorf("manifest.json layer %d is %s, want %s", i, dm[0].Layers[i], blobPath(l.Digest))
		}
		if _, err := os.Stat(filepath.Join(dir, dm[0].Layers[i])); err != nil {
			t.Error(err)
		}
	}
}

// binaryOf returns /metrics-operator from the image's layers, checking its
// mode on the way.
func binaryOf(t *testing.T, img v1.Image) []byte {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Name == "metrics-operator" {
				if h.Mode&0o111 == 0 {
					t.Errorf("/metrics-operator has mode %o, want executable", h.Mode)
				}
				data, err := io.ReadAll(tr)
				if err != nil {
					t.Fatal(err)
				}
				_ = rc.Close()
				return data
			}
		}
		_ = rc.Close()
	}
	t.Fatal("no /metrics-operator in the image")
	return nil
}

// checkStatic fails unless bin is an ELF executable for GOARCH that needs
// no dynamic loader: the image has no libc.
func checkStatic(t *testing.T, bin []byte) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		t.Fatalf("the binary is not ELF: %v", err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary is dynamically linked (PT_INTERP); the image has no loader")
		}
	}
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[runtime.GOARCH]
	if want != 0 && f.Machine != want {
		t.Errorf("the binary is for %v, want %v", f.Machine, want)
	}
}

// untar unpacks the archive into a new directory.
func untar(t *testing.T, archive string) string {
	t.Helper()
	dir := t.TempDir()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return dir
		}
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(path, dir+string(filepath.Separator)) {
			t.Fatalf("archive entry %q leaves the directory", h.Name)
		}
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(path, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
