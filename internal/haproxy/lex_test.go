package haproxy

import (
	"slices"
	"strings"
	"testing"
)

func TestLex(t *testing.T) {
	env := func(name string) (string, bool) {
		v, ok := map[string]string{"PORT": "8443", "CERTS": "/etc/ssl"}[name]
		return v, ok
	}
	for _, tc := range []struct {
		name, in string
		words    []string
		env      []string
		err      string
	}{
		{name: "blanks and tabs", in: "  server\tsen1   react1:8079  check", words: []string{"server", "sen1", "react1:8079", "check"}},
		{name: "escaped blank", in: `http-response set-header Strict-Transport-Security max-age=16000000;\ preload;`,
			words: []string{"http-response", "set-header", "Strict-Transport-Security", "max-age=16000000; preload;"}},
		{name: "double quotes", in: `http-response set-header X "a b  c"`, words: []string{"http-response", "set-header", "X", "a b  c"}},
		{name: "single quotes keep everything", in: `acl x path 'a\ "$PORT" # not a comment'`, words: []string{"acl", "x", "path", `a\ "$PORT" # not a comment`}},
		{name: "quotes join a word", in: `bind "127.0.0.1":80`, words: []string{"bind", "127.0.0.1:80"}},
		{name: "comment", in: "timeout connect 5s # five seconds", words: []string{"timeout", "connect", "5s"}},
		{name: "escaped hash", in: `acl x path /a\#b`, words: []string{"acl", "x", "path", "/a#b"}},
		{name: "regexp backslashes kept", in: `http-check expect rstring version\s*:\d`, words: []string{"http-check", "expect", "rstring", `version\s*:\d`}},
		{name: "CR LF and hex", in: `option httpchk GET /status HTTP/1.1\r\nHost:\ www\x41`, words: []string{"option", "httpchk", "GET", "/status", "HTTP/1.1\r\nHost: wwwA"}},
		{name: "env in double quotes", in: `bind ":${PORT}" ssl crt "$CERTS/site.pem"`, words: []string{"bind", ":8443", "ssl", "crt", "/etc/ssl/site.pem"}, env: []string{"PORT", "CERTS"}},
		{name: "unset env is empty", in: `bind ":$NOPE"`, words: []string{"bind", ":"}, env: []string{"NOPE"}},
		{name: "no env outside quotes", in: `bind :$PORT`, words: []string{"bind", ":$PORT"}},
		{name: "blank line", in: "   \t ", words: nil},
		{name: "comment line", in: "# global", words: nil},
		{name: "CRLF line end", in: "mode http\r", words: []string{"mode", "http"}},
		{name: "quote not closed", in: `http-response set-header X "a b`, err: "the \" quote is not closed"},
		{name: "backslash at the end", in: `server a b:1 \`, err: "a backslash ends the line"},
		{name: "bad hex", in: `acl x path \xZZ`, err: `\xZZ: want two hex digits`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lines, errs := lex(tc.in, env)
			if tc.err != "" {
				if len(errs) != 1 || !strings.Contains(errs[0].Error(), tc.err) || errs[0].Line != 1 {
					t.Fatalf("errors %v, want one on line 1 with %q", errs, tc.err)
				}
				return
			}
			if len(errs) > 0 {
				t.Fatalf("errors %v", errs)
			}
			var words, envs []string
			if len(lines) > 0 {
				words, envs = lines[0].Words, lines[0].Env
			}
			if !slices.Equal(words, tc.words) || !slices.Equal(envs, tc.env) {
				t.Errorf("words %q env %q, want %q env %q", words, envs, tc.words, tc.env)
			}
		})
	}
}

// TestLexLineNumbers: each directive keeps the number of the line it is
// on, blank and comment lines counted; a bad line does not hide the rest.
func TestLexLineNumbers(t *testing.T) {
	lines, errs := lex("global\n\n  # comment\n  daemon\nbackend b \"x\n  server a b:1\n", nil)
	var nums []int
	for _, l := range lines {
		nums = append(nums, l.Num)
	}
	if !slices.Equal(nums, []int{1, 4, 6}) || len(errs) != 1 || errs[0].Line != 5 {
		t.Errorf("lines %v errors %v, want lines 1 4 6 and an error on line 5", nums, errs)
	}
}

func FuzzLex(f *testing.F) {
	for _, s := range []string{`a "b c" 'd e' f\ g # h`, `"${X}$Y\x41\r\n"`, `\`, `"`, `'`, "a\tb\r\n\\#"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lines, errs := lex(s, func(string) (string, bool) { return "v", true })
		for _, l := range lines {
			if len(l.Words) == 0 || l.Num < 1 {
				t.Fatalf("line %+v: a directive has words and a number", l)
			}
		}
		for _, e := range errs {
			if e.Line < 1 {
				t.Fatalf("error %v has no line", e)
			}
		}
	})
}
