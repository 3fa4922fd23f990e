package haproxy

import "slices"

// Section kinds.
const (
	kGlobal   = "global"
	kDefaults = "defaults"
	kFrontend = "frontend"
	kBackend  = "backend"
	kListen   = "listen"
)

// otherSections are HAProxy's sections that tandem has nothing for.
var otherSections = []string{"resolvers", "peers", "userlist", "mailers", "program", "http-errors", "ring",
	"cache", "crt-store", "log-forward", "traces", "fcgi-app", "acme", "dynamic-update"}

// section is one section of the file: its header line and its directives.
type section struct {
	Kind string
	Name string
	// From names the defaults section it takes its settings from ("from
	// NAME"); "" takes the last defaults section above it.
	From  string
	Head  *Line
	Lines []*Line
	// defaults is the defaults section whose settings apply, if any.
	defaults *section
}

// frontendSide and backendSide say which halves of a proxy a section has.
func (s *section) frontendSide() bool { return s.Kind == kFrontend || s.Kind == kListen }
func (s *section) backendSide() bool  { return s.Kind == kBackend || s.Kind == kListen }

// sectionsOf groups lines into sections and links each proxy to its
// defaults. Lines before the first section, and a section header HAProxy
// would refuse, are reported through t.
func sectionsOf(lines []*Line, t *tracker) []*section {
	var out []*section
	var cur *section
	var lastDefaults *section
	named := map[string]*section{}
	for _, l := range lines {
		kw := l.Words[0]
		isSection := kw == kGlobal || kw == kDefaults || kw == kFrontend || kw == kBackend || kw == kListen || slices.Contains(otherSections, kw)
		if !isSection {
			if len(kw) > 1 && kw[0] == '.' {
				t.fail(l, "conditional blocks and messages (.if, .else, .endif, .notice...) are not translated: tandem import cannot tell which branch HAProxy takes; resolve them first")
				continue
			}
			if cur == nil {
				t.fail(l, "%q stands before any section (global, defaults, frontend, backend, listen)", kw)
				continue
			}
			cur.Lines = append(cur.Lines, l)
			continue
		}
		s := &section{Kind: kw, Head: l}
		args := l.Words[1:]
		if len(args) >= 2 && args[len(args)-2] == "from" {
			s.From = args[len(args)-1]
			args = args[:len(args)-2]
		}
		if len(args) > 0 {
			s.Name = args[0]
		}
		if (kw == kFrontend || kw == kBackend || kw == kListen) && s.Name == "" {
			t.fail(l, "%s without a name", kw)
		}
		if len(args) > 1 {
			t.fail(l, "%s %s: unexpected %q after the name", kw, s.Name, args[1])
		}
		if kw == kFrontend || kw == kBackend || kw == kListen || kw == kDefaults {
			switch {
			case s.From != "" && named[s.From] == nil:
				t.fail(l, "from %s: no defaults section named %q above this line", s.From, s.From)
			case s.From != "":
				s.defaults = named[s.From]
			case kw != kDefaults:
				s.defaults = lastDefaults
			}
		}
		if kw == kDefaults {
			lastDefaults = s
			if s.Name != "" {
				named[s.Name] = s
			}
		}
		out = append(out, s)
		cur = s
	}
	return out
}
