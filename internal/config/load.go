package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Problem is one thing wrong in a config file, located by line and field.
type Problem struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (p *Problem) Error() string {
	loc := p.File
	if p.Line > 0 {
		loc += ":" + strconv.Itoa(p.Line)
	}
	if p.Field == "" {
		return fmt.Sprintf("%s: %s", loc, p.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", loc, p.Field, p.Msg)
}

// Problems extracts every Problem from an error returned by Load or Parse.
func Problems(err error) []*Problem {
	var out []*Problem
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, Problems(e)...)
		}
		return out
	}
	var p *Problem
	if errors.As(err, &p) {
		out = append(out, p)
	}
	return out
}

// Load reads, parses, defaults and validates the file at path, and loads
// every file it names as the gateway would (certificates and keys, token
// file, kubeconfig), so that what Load accepts the gateway can start with.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return parse(path, data, true)
}

// Parse parses data (named file in messages), fills defaults and validates.
// The error, if any, joins one *Problem per mistake, sorted by line. It
// reads no other file (Load does).
func Parse(file string, data []byte) (*Config, error) { return parse(file, data, false) }

func parse(file string, data []byte, files bool) (*Config, error) {
	c := &collector{file: file, lines: map[string]int{}}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			c.add(0, "", "file is empty")
		} else {
			c.addYAML(err)
		}
		return nil, c.err()
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	if doc.Kind != yaml.MappingNode {
		c.add(doc.Line, "", "the top level must be a mapping (listeners:, groups:, ...)")
		return nil, c.err()
	}
	c.walk(doc, reflect.TypeFor[Config](), "")
	cfg := &Config{File: file}
	if err := doc.Decode(cfg); err != nil && len(c.problems) == 0 {
		// The walk checks every scalar, so this is a fallback only.
		c.addYAML(err)
		return nil, c.err()
	}
	// Validate even when the walk found mistakes so that one run lists them
	// all; a field already reported is not reported again.
	applyDefaults(cfg)
	validate(cfg, c)
	if files {
		checkFiles(cfg, c)
	}
	if len(c.problems) > 0 {
		return nil, c.err()
	}
	return cfg, nil
}

// collector gathers problems and knows the line of every field path.
type collector struct {
	file     string
	lines    map[string]int // field path -> line
	problems []*Problem
}

// addAt reports the messages of a custom scalar's error on field.
func (c *collector) addAt(field string, err error) {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		c.at(field, "%v", err)
		return
	}
	for _, m := range te.Errors {
		if sub := lineRE.FindStringSubmatch(m); sub != nil {
			line, _ := strconv.Atoi(sub[1])
			c.add(line, field, "%s", sub[2])
			continue
		}
		c.at(field, "%s", m)
	}
}

func (c *collector) add(line int, field, format string, args ...any) {
	if field != "" {
		// One problem per field: a field already reported, or inside one
		// (a list item that is not a mapping), is not reported again.
		for _, p := range c.problems {
			if p.Field == field || strings.HasPrefix(field, p.Field+".") || strings.HasPrefix(field, p.Field+"[") {
				return
			}
		}
	}
	c.problems = append(c.problems, &Problem{File: c.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// at reports a problem on a field path, at the line of the nearest path known.
func (c *collector) at(field, format string, args ...any) {
	c.add(c.lineOf(field), field, format, args...)
}

func (c *collector) lineOf(field string) int {
	for p := field; p != ""; {
		if l, ok := c.lines[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

var lineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// addYAML turns yaml.v3's "line N: msg" errors into problems with a field.
func (c *collector) addYAML(err error) {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	for _, m := range msgs {
		sub := lineRE.FindStringSubmatch(m)
		if sub == nil {
			c.add(0, "", "%s", strings.TrimPrefix(m, "yaml: "))
			continue
		}
		line, _ := strconv.Atoi(sub[1])
		c.add(line, c.fieldAt(line), "%s", sub[2])
	}
}

// fieldAt finds the deepest field path that starts on line.
func (c *collector) fieldAt(line int) string {
	best := ""
	for p, l := range c.lines {
		if l == line && len(p) > len(best) {
			best = p
		}
	}
	return best
}

func (c *collector) err() error {
	sort.SliceStable(c.problems, func(i, j int) bool { return c.problems[i].Line < c.problems[j].Line })
	errs := make([]error, len(c.problems))
	for i, p := range c.problems {
		errs[i] = p
	}
	return errors.Join(errs...)
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// walk records the line of every field and reports keys that the type does
// not have, and keys given twice, before decoding.
func (c *collector) walk(n *yaml.Node, t reflect.Type, path string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if path != "" {
		if _, seen := c.lines[path]; !seen {
			c.lines[path] = n.Line
		}
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		// Check custom scalars here, where the field path is known, rather
		// than from the decoder's line-only messages.
		if err := reflect.New(t).Interface().(yaml.Unmarshaler).UnmarshalYAML(n); err != nil {
			c.addAt(path, err)
			blank(n, t)
		}
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	bad := func(format string) {
		c.add(n.Line, path, format, describe(n))
		blank(n, t)
	}
	switch t.Kind() {
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			bad("want true or false, got %s")
		}
	case reflect.Int, reflect.Int64, reflect.Int32:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			bad("want a whole number, got %s")
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			bad("want a string, got %s")
		}
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			bad("want a mapping of fields, got %s")
			return
		}
		fields := yamlFields(t)
		seen := map[string]bool{}
		kept := n.Content[:0:0]
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			fp := joinPath(path, k.Value)
			if seen[k.Value] {
				// Dropped from the tree: the decoder refuses a mapping with
				// a key given twice, which would hide the rest of it.
				c.add(k.Line, fp, "given twice")
				continue
			}
			seen[k.Value] = true
			kept = append(kept, k, v)
			f, ok := fields[k.Value]
			if !ok {
				msg := "unknown field"
				if s := suggest(k.Value, fields); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
				}
				c.add(k.Line, fp, "%s", msg)
				continue
			}
			c.lines[fp] = k.Line
			c.walk(v, f.Type, fp)
		}
		n.Content = kept
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			bad("want a list, got %s")
			return
		}
		for i, it := range n.Content {
			c.walk(it, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	}
}

// blank empties a node already reported as wrong, so that decoding keeps
// every other field and the index of every list element.
func blank(n *yaml.Node, t reflect.Type) {
	e := yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
	switch t.Kind() {
	case reflect.Struct:
		e.Kind, e.Tag = yaml.MappingNode, "!!map"
	case reflect.Slice:
		e.Kind, e.Tag = yaml.SequenceNode, "!!seq"
	}
	*n = e
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func yamlFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f
	}
	return out
}

// suggest returns the known field closest to a misspelt key, if close enough.
func suggest(key string, fields map[string]reflect.StructField) string {
	best, bestD := "", 3
	for name := range fields {
		if d := editDistance(strings.ToLower(key), strings.ToLower(name)); d < bestD || (d == bestD && name < best && best != "") {
			best, bestD = name, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
