package main

import (
	"archive/tar"
	"context"
	"debug/elf"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestImage builds the image as `go run ./deploy/image -o DIR` does, reads
// it back from the OCI layout and checks its shape: the chart's reference,
// the user, entrypoint and cmd, one layer holding only the static binary,
// no shell, the size; and that a second build gives the same digest.
func TestImage(t *testing.T) {
	const root = "../.." // go test runs in deploy/image
	dir := t.TempDir()
	ctx := context.Background()
	r, err := build(ctx, options{root: root, out: dir, arch: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s %s: layer %.1f MiB compressed, binary %.1f MiB", r.Ref, r.Digest,
		float64(r.LayerBytes)/(1<<20), float64(r.FileBytes)/(1<<20))

	want, err := chartRef(filepath.Join(root, chartDir))
	if err != nil {
		t.Fatal(err)
	}
	if r.Ref != want || !strings.HasPrefix(want, "ghcr.io/tandemproxy/tandem:") {
		t.Errorf("ref = %s, want the chart's %s", r.Ref, want)
	}
	tag := want[strings.LastIndex(want, ":")+1:]

	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Annotations[refAnnotation] != tag || im.Manifests[0].Digest != r.Digest {
		t.Fatalf("index.json = %+v, want one image tagged %s", im.Manifests, tag)
	}
	img, err := idx.Image(r.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if mt, _ := img.MediaType(); mt != types.OCIManifestSchema1 {
		t.Errorf("manifest media type %s", mt)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if c.User != "65532:65532" || !slices.Equal(c.Entrypoint, []string{"/tandem"}) ||
		!slices.Equal(c.Cmd, []string{"gateway", "-c", "/etc/tandem/tandem.yaml"}) || cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("config: user %q entrypoint %q cmd %q %s/%s", c.User, c.Entrypoint, c.Cmd, cf.OS, cf.Architecture)
	}
	for _, k := range []string{"title", "source", "version", "created", "revision", "licenses"} {
		if c.Labels["org.opencontainers.image."+k] == "" {
			t.Errorf("label org.opencontainers.image.%s missing: %v", k, c.Labels)
		}
	}
	if c.Labels["org.opencontainers.image.version"] != tag {
		t.Errorf("version label %q, want %s", c.Labels["org.opencontainers.image.version"], tag)
	}

	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1", len(layers))
	}
	files := layerFiles(t, layers[0])
	if len(files) != 1 || files[0].hdr.Name != "tandem" {
		var names []string
		for _, f := range files {
			names = append(names, f.hdr.Name)
		}
		t.Fatalf("layer holds %q, want only tandem", names)
	}
	for _, f := range files {
		if base := filepath.Base(f.hdr.Name); base == "sh" || base == "bash" || base == "busybox" || strings.HasPrefix(f.hdr.Name, "bin/") {
			t.Errorf("a shell in the image: %s", f.hdr.Name)
		}
	}
	bin := files[0]
	if bin.hdr.Typeflag != tar.TypeReg || bin.hdr.Mode&0o111 != 0o111 || bin.hdr.Mode&0o022 != 0 || bin.hdr.Uid != 0 {
		t.Errorf("/tandem: type %c mode %o uid %d: want a root-owned regular file, executable by all, writable by none but root",
			bin.hdr.Typeflag, bin.hdr.Mode, bin.hdr.Uid)
	}
	exe := filepath.Join(t.TempDir(), "tandem")
	if err := os.WriteFile(exe, bin.data, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP || prog.Type == elf.PT_DYNAMIC {
			t.Errorf("/tandem has a %s program header: not statically linked", prog.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("/tandem needs %v", libs)
	}
	if f.Machine != elf.EM_X86_64 {
		t.Errorf("/tandem is for %s", f.Machine)
	}
	// The image's own entrypoint and cmd run: it finds no config there.
	out, err := exec.Command(exe, "gateway", "-c", "/etc/tandem/tandem.yaml").CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !strings.Contains(string(out), "tandem.yaml") {
		t.Errorf("/tandem gateway -c /etc/tandem/tandem.yaml without the file: %v\n%s", err, out)
	}
	if r.LayerBytes > 40<<20 {
		t.Errorf("layer is %d bytes: more than 40 MiB", r.LayerBytes)
	}

	// Reproducible: the same tree builds the same digest, and the layout
	// still holds one image under the tag.
	r2, err := build(ctx, options{root: root, out: dir, arch: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	if r2.Digest != r.Digest {
		t.Errorf("second build: digest %s, first %s", r2.Digest, r.Digest)
	}
	if im, err := p.ImageIndex(); err == nil {
		if m, err := im.IndexManifest(); err != nil || len(m.Manifests) != 1 {
			t.Errorf("after a rebuild the index holds %v (%v)", m, err)
		}
	}
}

type file struct {
	hdr  *tar.Header
	data []byte
}

func layerFiles(t *testing.T, l v1.Layer) []file {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var files []file
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, file{hdr, data})
	}
}
