// Command image builds tandem's container image without a Docker daemon,
// into an OCI image layout directory:
//
//	go run ./deploy/image -o DIR
//
// The image has a single layer holding one file, /tandem: the statically
// linked binary (CGO_ENABLED=0, -trimpath), run as 65532:65532 with
// entrypoint ["/tandem"] and cmd ["gateway", "-c", "/etc/tandem/tandem.yaml"].
// No shell, no libc, no package manager. Its reference defaults to the Helm
// chart's image values (deploy/helm/tandem: image.repository, and image.tag
// or else the chart's appVersion), so the chart points at what this builds;
// the tag is the layout's org.opencontainers.image.ref.name. The created
// time is $SOURCE_DATE_EPOCH, else the HEAD commit's time: the same commit
// builds the same digest.
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"go.yaml.in/yaml/v3"
)

// The image's fixed shape.
const (
	binaryPath = "/tandem"
	user       = "65532:65532"
	configPath = "/etc/tandem/tandem.yaml"
	// refAnnotation names an image in an OCI layout's index.json.
	refAnnotation = "org.opencontainers.image.ref.name"
	source        = "https://github.com/tandemproxy/tandem"
	module        = "github.com/tandemproxy/tandem"
)

// chartDir is the Helm chart whose image values name the image, from the
// module root.
const chartDir = "deploy/helm/tandem"

type options struct {
	root string // the module root: the directory holding go.mod
	out  string // the OCI layout directory
	ref  string // REPOSITORY:TAG; default from the chart
	arch string // GOARCH of the binary
}

// result is what build made, for the summary line and the tests.
type result struct {
	Ref        string
	Digest     v1.Hash
	LayerBytes int64 // compressed, as pulled
	FileBytes  int64 // the binary
}

func main() {
	o := options{root: "."}
	flag.StringVar(&o.out, "o", "", "OCI image layout directory to write (created if missing; an image of the same tag is replaced)")
	flag.StringVar(&o.ref, "ref", "", "image reference REPOSITORY:TAG (default: the chart's image.repository and image.tag or appVersion)")
	flag.StringVar(&o.arch, "arch", runtime.GOARCH, "GOARCH of the binary (linux only)")
	flag.Parse()
	if o.out == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: go run ./deploy/image -o DIR [-ref REPOSITORY:TAG] [-arch ARCH]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	r, err := build(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
	fmt.Printf("%s %s in %s: layer %.1f MiB (binary %.1f MiB)\n", r.Ref, r.Digest, o.out,
		float64(r.LayerBytes)/(1<<20), float64(r.FileBytes)/(1<<20))
}

// build compiles tandem, makes the image and writes it into o.out.
func build(ctx context.Context, o options) (result, error) {
	root := o.root
	if err := checkRoot(root); err != nil {
		return result{}, err
	}
	ref := o.ref
	var err error
	if ref == "" {
		if ref, err = chartRef(filepath.Join(root, chartDir)); err != nil {
			return result{}, err
		}
	}
	i := strings.LastIndex(ref, ":")
	if i < 0 || strings.Contains(ref[i:], "/") {
		return result{}, fmt.Errorf("reference %q has no tag", ref)
	}
	tag := ref[i+1:]
	tmp, err := os.MkdirTemp("", "tandem-image-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "tandem")
	if err := compile(ctx, root, o.arch, bin); err != nil {
		return result{}, err
	}
	binary, err := os.ReadFile(bin)
	if err != nil {
		return result{}, err
	}
	created := createdAt(ctx, root)
	labels := map[string]string{
		"org.opencontainers.image.title":       "tandem",
		"org.opencontainers.image.description": "master/failover HTTP gateway for stateful web apps",
		"org.opencontainers.image.source":      source,
		"org.opencontainers.image.url":         source,
		"org.opencontainers.image.licenses":    "Apache-2.0",
		"org.opencontainers.image.version":     tag,
		"org.opencontainers.image.created":     created.UTC().Format(time.RFC3339),
	}
	if rev := git(ctx, root, "rev-parse", "HEAD"); rev != "" {
		if git(ctx, root, "status", "--porcelain") != "" {
			rev += "-dirty" // built from uncommitted changes
		}
		labels["org.opencontainers.image.revision"] = rev
	}
	img, err := image(binary, o.arch, created, labels)
	if err != nil {
		return result{}, err
	}
	if err := writeLayout(o.out, img, tag); err != nil {
		return result{}, err
	}
	r := result{Ref: ref, FileBytes: int64(len(binary))}
	if r.Digest, err = img.Digest(); err != nil {
		return result{}, err
	}
	layers, err := img.Layers()
	if err != nil {
		return result{}, err
	}
	for _, l := range layers {
		n, err := l.Size()
		if err != nil {
			return result{}, err
		}
		r.LayerBytes += n
	}
	return r, nil
}

// checkRoot makes sure root is tandem's module root (where `go run
// ./deploy/image` runs).
func checkRoot(root string) error {
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !bytes.HasPrefix(b, []byte("module "+module+"\n")) {
		return fmt.Errorf("%s is not the root of %s: run from the repository's root", root, module)
	}
	return nil
}

// chartRef is the image the chart's Deployment names by default.
func chartRef(dir string) (string, error) {
	var chart struct {
		AppVersion string `yaml:"appVersion"`
	}
	var values struct {
		Image struct {
			Repository string `yaml:"repository"`
			Tag        string `yaml:"tag"`
		} `yaml:"image"`
	}
	for file, v := range map[string]any{"Chart.yaml": &chart, "values.yaml": &values} {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			return "", err
		}
		if err := yaml.Unmarshal(b, v); err != nil {
			return "", fmt.Errorf("%s: %w", filepath.Join(dir, file), err)
		}
	}
	tag := values.Image.Tag
	if tag == "" {
		tag = chart.AppVersion
	}
	if values.Image.Repository == "" || tag == "" {
		return "", fmt.Errorf("%s: no image.repository, or neither image.tag nor appVersion", dir)
	}
	return values.Image.Repository + ":" + tag, nil
}

// compile builds cmd/tandem for linux/arch, statically linked: CGO_ENABLED=0
// leaves no dynamic loader and no libc to need.
func compile(ctx context.Context, root, arch, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", out, "./cmd/tandem")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/tandem: %w\n%s", err, b)
	}
	return nil
}

// createdAt is $SOURCE_DATE_EPOCH, else the HEAD commit's time, else the
// Unix epoch: never the clock, so that a build is reproducible.
func createdAt(ctx context.Context, root string) time.Time {
	for _, s := range []string{os.Getenv("SOURCE_DATE_EPOCH"), git(ctx, root, "log", "-1", "--format=%ct")} {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return time.Unix(n, 0).UTC()
		}
	}
	return time.Unix(0, 0).UTC()
}

// git runs a git query in root; "" when git or the repository is missing.
func git(ctx context.Context, root string, args ...string) string {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// image is the OCI image: one layer with the binary at /tandem, owned by
// root and executable by all (the non-root user runs it and cannot change it).
func image(binary []byte, arch string, created time.Time, labels map[string]string) (v1.Image, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := &tar.Header{
		Typeflag: tar.TypeReg, Name: strings.TrimPrefix(binaryPath, "/"), Mode: 0o755,
		Size: int64(len(binary)), ModTime: created, Format: tar.FormatPAX,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, err
	}
	if _, err := tw.Write(binary); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(buf.Bytes())), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{
		Created: v1.Time{Time: created}, CreatedBy: "go run ./deploy/image", Comment: "the static tandem binary at " + binaryPath,
	}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Created = "linux", arch, v1.Time{Time: created}
	cf.Config = v1.Config{
		User:       user,
		Entrypoint: []string{binaryPath},
		Cmd:        []string{"gateway", "-c", configPath},
		WorkingDir: "/",
		Labels:     labels,
		// The chart's defaults: http, https, admin.
		ExposedPorts: map[string]struct{}{"8080/tcp": {}, "8443/tcp": {}, "9901/tcp": {}},
	}
	return mutate.ConfigFile(img, cf)
}

// writeLayout writes img into the OCI layout at dir under tag, replacing an
// image of the same tag (its blobs stay until the directory is removed).
func writeLayout(dir string, img v1.Image, tag string) error {
	p, err := layout.FromPath(dir)
	if err != nil {
		if p, err = layout.Write(dir, empty.Index); err != nil {
			return fmt.Errorf("OCI layout %s: %w", dir, err)
		}
	}
	ann := map[string]string{refAnnotation: tag}
	if err := p.ReplaceImage(img, match.Annotation(refAnnotation, tag), layout.WithAnnotations(ann)); err != nil {
		return fmt.Errorf("OCI layout %s: %w", dir, err)
	}
	return nil
}
