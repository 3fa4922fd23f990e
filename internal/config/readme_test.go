package config_test

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/tandemproxy/tandem/internal/config"
)

// TestReadmeDocumentsEveryField: every field a config file may hold is
// named in README.md, so that an operator can learn each from it. The
// Kubernetes sections are documented in docs/kubernetes.md.
func TestReadmeDocumentsEveryField(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	skip := map[reflect.Type]bool{
		reflect.TypeFor[config.Kubernetes](): true,
		reflect.TypeFor[config.Discovery]():  true,
	}
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type, path string)
	walk = func(typ reflect.Type, path string) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || seen[typ] || skip[typ] {
			return
		}
		seen[typ] = true
		for i := range typ.NumField() {
			f := typ.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			field := strings.TrimPrefix(path+"."+name, ".")
			ft := f.Type
			for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
				ft = ft.Elem()
			}
			if skip[ft] {
				continue
			}
			if !strings.Contains(readme, name+":") && !strings.Contains(readme, "`"+name+"`") && !strings.Contains(readme, "."+name+"`") {
				t.Errorf("README.md does not document %s", field)
			}
			walk(f.Type, field)
		}
	}
	walk(reflect.TypeFor[config.Config](), "")
}
