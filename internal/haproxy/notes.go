package haproxy

import (
	"fmt"
	"sort"
	"strconv"
)

// Kind of a note about one line of the source.
type Kind int

const (
	// Skipped: the directive is not translated; the note says why.
	Skipped Kind = iota
	// Warning: translated, but the result differs from HAProxy's, or a
	// value kept as written is dangerous; the note says how.
	Warning
	// Error: the file cannot be translated into a working config.
	Error
)

func (k Kind) String() string {
	switch k {
	case Warning:
		return "warning"
	case Error:
		return "error"
	}
	return "not translated"
}

// Note is one message about a line of the HAProxy file.
type Note struct {
	File      string
	Line      int // 0: about the file as a whole
	Directive string
	Kind      Kind
	Msg       string
}

func (n Note) String() string {
	loc := n.File
	if n.Line > 0 {
		loc += ":" + strconv.Itoa(n.Line)
	}
	if n.Directive == "" {
		return fmt.Sprintf("%s: %s: %s", loc, n.Kind, n.Msg)
	}
	return fmt.Sprintf("%s: %s: %s: %s", loc, n.Kind, n.Directive, n.Msg)
}

// tracker records what became of every line: translated, or a note.
type tracker struct {
	file string
	done map[*Line]bool
	// pending are rules whose fate the whole file decides (a redirect
	// applies to the listeners that serve its backend).
	pending map[*Line]bool
	notes   []Note
	seen    map[string]bool
}

func newTracker(file string) *tracker {
	return &tracker{file: file, done: map[*Line]bool{}, pending: map[*Line]bool{}, seen: map[string]bool{}}
}

func (t *tracker) note(l *Line, k Kind, format string, args ...any) {
	n := Note{File: t.file, Kind: k, Msg: fmt.Sprintf(format, args...)}
	if l != nil {
		n.Line, n.Directive = l.Num, l.keyword()
	}
	if key := n.String(); !t.seen[key] {
		t.seen[key] = true
		t.notes = append(t.notes, n)
	}
}

// ok marks lines as translated.
func (t *tracker) ok(ls ...*Line) {
	for _, l := range ls {
		if l != nil {
			t.done[l] = true
		}
	}
}

// skip: l is not translated, for the reason given.
func (t *tracker) skip(l *Line, format string, args ...any) { t.note(l, Skipped, format, args...) }

// warn: l is translated, with a difference or a danger worth saying.
func (t *tracker) warn(l *Line, format string, args ...any) {
	t.ok(l)
	t.note(l, Warning, format, args...)
}

// drop: l, read as translated, is left out after all, for the reason given.
func (t *tracker) drop(l *Line, format string, args ...any) {
	t.done[l] = false
	t.note(l, Skipped, format, args...)
}

// fail: l keeps the file from becoming a working config.
func (t *tracker) fail(l *Line, format string, args ...any) { t.note(l, Error, format, args...) }

// handled reports whether l was translated or reported as not (a
// warning alone does not say: the environment's are made first).
func (t *tracker) handled(l *Line) bool {
	if t.done[l] {
		return true
	}
	for _, n := range t.notes {
		if n.Line == l.Num && n.Kind != Warning {
			return true
		}
	}
	return false
}

func (t *tracker) errors() int {
	n := 0
	for _, x := range t.notes {
		if x.Kind == Error {
			n++
		}
	}
	return n
}

// sorted returns the notes by line, then in the order they were made.
func (t *tracker) sorted() []Note {
	out := append([]Note(nil), t.notes...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	return out
}
