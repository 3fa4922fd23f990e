// Package haproxy translates an HAProxy configuration into a tandem one:
// `tandem import haproxy FILE`. Every directive of the source is either
// translated or reported, with its line and why; a value kept as written
// that makes the gateway slow to notice a failure is reported too. The
// result is checked by the config package as `tandem check` would.
package haproxy

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Options change how a file is translated.
type Options struct {
	// HTTP and HTTPS (with Crt, one PEM file holding the certificate chain
	// and key) stand in for a frontend when the file has none: a file of
	// backends alone says nothing of where to listen.
	HTTP, HTTPS, Crt string
	// Getenv expands "$VAR" in the file; nil uses the environment.
	Getenv func(string) (string, bool)
}

// Result is a translation.
type Result struct {
	// YAML is the tandem config; nil when the file cannot be translated.
	YAML []byte
	// Notes are every line not translated, every warning and error, by line.
	Notes []Note
	// Directives counts the lines read; Translated those translated.
	Directives, Translated int
}

// ErrUntranslatable means the file cannot be translated into a working
// config: the notes of kind Error say why.
var ErrUntranslatable = errors.New("cannot be translated into a working tandem config")

// translator holds the state of one translation.
type translator struct {
	t   *tracker
	opt Options
	// file names the source in the YAML's comments: quoted when it has
	// what a comment cannot hold (a line break, bytes that are not UTF-8).
	file string

	crtBase string
	minTLS  val[string] // from ssl-default-bind-options
	drain   val[time.Duration]

	fronts []*front
	backs  []*back
	byName map[string]*back
	// leftOut are the proxy sections not translated, and why.
	leftOut map[string]string
}

// Translate translates data, read from file (for messages).
func Translate(file string, data []byte, opt Options) (*Result, error) {
	if opt.Getenv == nil {
		opt.Getenv = os.LookupEnv
	}
	shown := file
	if !utf8.ValidString(file) || strings.ContainsFunc(file, func(r rune) bool { return !unicode.IsPrint(r) }) {
		shown = strconv.Quote(file)
	}
	tr := &translator{t: newTracker(file), opt: opt, file: shown, byName: map[string]*back{}, leftOut: map[string]string{}}
	lines, lexErrs := lex(string(data), opt.Getenv)
	for _, e := range lexErrs {
		tr.t.note(&Line{Num: e.Line}, Error, "%s", e.Msg)
	}
	for _, l := range lines {
		for _, name := range l.Env {
			if v, ok := opt.Getenv(name); ok {
				tr.t.note(l, Warning, "$%s expanded from the environment of tandem import, to %q: the config holds the value, not the variable", name, v)
			} else {
				tr.t.note(l, Warning, "$%s is not set in the environment of tandem import: expanded to nothing", name)
			}
		}
	}
	secs := sectionsOf(lines, tr.t)
	for _, s := range secs {
		tr.section(s)
	}
	for _, s := range secs {
		if s.Kind != kDefaults {
			continue
		}
		tr.t.ok(s.Head)
		for _, l := range s.Lines {
			if !tr.t.handled(l) {
				tr.t.skip(l, "no section translated here takes this setting from this defaults section")
			}
		}
	}
	if len(lines) == 0 && len(lexErrs) == 0 {
		tr.t.note(nil, Error, "the file holds no directive")
	}
	res := &Result{Directives: len(lines)}
	var yaml []byte
	if len(lines) > 0 {
		yaml = tr.assemble()
	}
	for _, l := range lines {
		switch {
		case tr.t.handled(l):
		case tr.t.pending[l] && tr.t.errors() > 0:
			// Its fate waited for the whole file, which has errors.
		default:
			// Every line gets a word: one that no rule took is reported.
			tr.t.skip(l, "tandem import does not know this directive")
		}
		if tr.t.done[l] {
			res.Translated++
		}
	}
	res.Notes = tr.t.sorted()
	if n := tr.t.errors(); n > 0 {
		return res, fmt.Errorf("%s: %w (%d error(s))", file, ErrUntranslatable, n)
	}
	res.YAML = yaml
	return res, nil
}

func (tr *translator) section(s *section) {
	switch s.Kind {
	case kGlobal:
		tr.t.ok(s.Head)
		for _, l := range s.Lines {
			tr.global(l)
		}
	case kDefaults:
		// Read through the proxies that take their settings from it.
	case kFrontend, kBackend, kListen:
		tr.proxy(s)
	default:
		tr.t.skip(s.Head, "tandem has nothing for a %s section: its %d line(s) are left out", s.Kind, len(s.Lines))
		for _, l := range s.Lines {
			tr.t.skip(l, "in the %s section left out", s.Kind)
		}
	}
}

// effective returns the lines that configure s: its defaults' (and
// theirs, with "from") first, then its own, so that its own win.
func effective(s *section) (inherited, own []*Line) {
	for d := s.defaults; d != nil; d = d.defaults {
		inherited = append(append([]*Line(nil), d.Lines...), inherited...)
	}
	return inherited, s.Lines
}
