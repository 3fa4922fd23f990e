package haproxy

import (
	"bytes"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tandemproxy/tandem/internal/config"
	"go.yaml.in/yaml/v3"
)

// notText is a value YAML cannot hold, a string that is not UTF-8, and
// the path of its field.
type notText struct{ path, value string }

// encode writes cfg as YAML: only the fields set (the rest are tandem's
// defaults), named as config's yaml tags name them, each with a comment
// naming the source lines it came from (comments, by field path). The
// values that are not UTF-8 text are returned instead, if any.
func encode(cfg *config.Config, comments map[string]string, head string) ([]byte, []notText, error) {
	var bad []notText
	root := toNode(reflect.ValueOf(*cfg), "", comments, &bad)
	if len(bad) > 0 {
		return nil, bad, nil
	}
	root.HeadComment = head
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, nil, err
	}
	return buf.Bytes(), nil, nil
}

var (
	durationType  = reflect.TypeFor[config.Duration]()
	statusSetType = reflect.TypeFor[config.StatusSet]()
)

func scalar(tag, v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: v} }

func toNode(v reflect.Value, path string, comments map[string]string, bad *[]notText) *yaml.Node {
	for v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	switch {
	case v.Type() == durationType:
		return scalar("!!str", fmtDuration(v.Interface().(config.Duration).D()))
	case v.Type() == statusSetType:
		set := v.Interface().(config.StatusSet)
		n := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for _, r := range set {
			if r.Hi == r.Lo {
				n.Content = append(n.Content, scalar("!!int", strconv.Itoa(r.Lo)))
			} else {
				n.Content = append(n.Content, scalar("!!str", strconv.Itoa(r.Lo)+"-"+strconv.Itoa(r.Hi)))
			}
		}
		if len(n.Content) == 1 {
			return n.Content[0]
		}
		return n
	}
	switch v.Kind() {
	case reflect.Bool:
		return scalar("!!bool", strconv.FormatBool(v.Bool()))
	case reflect.Int, reflect.Int64:
		return scalar("!!int", strconv.FormatInt(v.Int(), 10))
	case reflect.String:
		if !utf8.ValidString(v.String()) {
			*bad = append(*bad, notText{path, v.String()})
		}
		return scalar("!!str", v.String())
	case reflect.Slice:
		n := &yaml.Node{Kind: yaml.SequenceNode}
		flow := true
		for i := range v.Len() {
			p := path + "[" + strconv.Itoa(i) + "]"
			item := toNode(v.Index(i), p, comments, bad)
			item.LineComment = comments[p]
			flow = flow && item.Kind == yaml.ScalarNode
			n.Content = append(n.Content, item)
		}
		if flow {
			n.Style = yaml.FlowStyle
		}
		return n
	case reflect.Struct:
		n := &yaml.Node{Kind: yaml.MappingNode}
		flow := true
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			fv := v.Field(i)
			if name == "-" || !f.IsExported() || fv.IsZero() {
				continue
			}
			p := name
			if path != "" {
				p = path + "." + name
			}
			val := toNode(fv, p, comments, bad)
			key := scalar("!!str", name)
			if c := comments[p]; c != "" {
				flow = false
				if val.Kind == yaml.ScalarNode || val.Style == yaml.FlowStyle {
					val.LineComment = c
				} else {
					key.LineComment = c
				}
			}
			if val.Kind != yaml.ScalarNode && val.Style != yaml.FlowStyle {
				flow = false
			}
			n.Content = append(n.Content, key, val)
		}
		// A small mapping with no comments inside reads on one line.
		if flow && len(n.Content) <= 10 && path != "" {
			n.Style = yaml.FlowStyle
		}
		return n
	}
	return scalar("!!null", "")
}
