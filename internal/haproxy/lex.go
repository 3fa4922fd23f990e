package haproxy

import (
	"fmt"
	"strconv"
	"strings"
)

// Line is one directive of an HAProxy config: its words after quoting,
// escapes and comments are resolved, and where it stands.
type Line struct {
	Num   int
	Words []string
	// Env names the environment variables expanded in it.
	Env []string
}

// keyword is the directive's name as the messages show it: the first
// word, and the second for the families whose meaning is in it.
func (l *Line) keyword() string {
	if len(l.Words) == 0 {
		return ""
	}
	n := 1
	switch l.Words[0] {
	case "option", "timeout", "http-check", "http-request", "http-response", "http-after-response", "stats",
		"server", "default-server", "acl", "tcp-request", "tcp-response", "bind", "use_backend", "use-server", "cookie",
		"frontend", "backend", "listen", "defaults":
		n = 2
	case "no":
		n = 3
	}
	return strings.Join(l.Words[:min(n, len(l.Words))], " ")
}

// lexError is a line the lexer could not read.
type lexError struct {
	Line int
	Msg  string
}

func (e *lexError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// lex splits an HAProxy config into its directives, one Line per
// non-empty line, the way HAProxy's own parser reads them: words are
// separated by blanks; '#' outside quotes starts a comment; a backslash
// escapes a blank, '#', a quote, a backslash or '$', and \r \n \t \xHH
// stand for their bytes (any other backslash is kept, as regular
// expressions need); double quotes group words and expand "$VAR" and
// "${VAR}" from getenv; single quotes group words and keep everything.
// Lines it cannot read are returned as errors, the others still.
func lex(data string, getenv func(string) (string, bool)) ([]*Line, []*lexError) {
	var lines []*Line
	var errs []*lexError
	for i, raw := range strings.Split(data, "\n") {
		l, err := lexLine(i+1, strings.TrimSuffix(raw, "\r"), getenv)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if l != nil {
			lines = append(lines, l)
		}
	}
	return lines, errs
}

func lexLine(num int, s string, getenv func(string) (string, bool)) (*Line, *lexError) {
	l := &Line{Num: num}
	var word strings.Builder
	inWord := false
	var quote byte // 0, '"' or '\''
	fail := func(format string, args ...any) (*Line, *lexError) {
		return nil, &lexError{Line: num, Msg: fmt.Sprintf(format, args...)}
	}
	end := func() {
		if inWord {
			l.Words = append(l.Words, word.String())
			word.Reset()
			inWord = false
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			} else {
				word.WriteByte(c)
			}
		case c == '\\':
			if i+1 == len(s) {
				return fail("a backslash ends the line: HAProxy does not join lines")
			}
			i++
			switch e := s[i]; e {
			case ' ', '\t', '#', '"', '\'', '\\', '$':
				word.WriteByte(e)
			case 'r':
				word.WriteByte('\r')
			case 'n':
				word.WriteByte('\n')
			case 't':
				word.WriteByte('\t')
			case 'x':
				if i+2 >= len(s) {
					return fail(`\x wants two hex digits`)
				}
				b, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
				if err != nil {
					return fail(`\x%s: want two hex digits`, s[i+1:i+3])
				}
				word.WriteByte(byte(b))
				i += 2
			default:
				word.WriteByte('\\')
				word.WriteByte(e)
			}
			inWord = true
		case quote == '"':
			switch c {
			case '"':
				quote = 0
			case '$':
				name, n, ok := envName(s[i+1:])
				if !ok {
					word.WriteByte(c)
					continue
				}
				v, set := getenv(name)
				if !set {
					v = ""
				}
				l.Env = append(l.Env, name)
				word.WriteString(v)
				i += n
			default:
				word.WriteByte(c)
			}
		case c == '"' || c == '\'':
			quote = c
			inWord = true
		case c == '#':
			i = len(s)
		case c == ' ' || c == '\t':
			end()
		default:
			word.WriteByte(c)
			inWord = true
		}
	}
	if quote != 0 {
		return fail("the %c quote is not closed on this line", quote)
	}
	end()
	if len(l.Words) == 0 {
		return nil, nil
	}
	return l, nil
}

// envName reads a variable name after '$': NAME or {NAME}. It returns the
// name and how many bytes it took.
func envName(s string) (string, int, bool) {
	if strings.HasPrefix(s, "{") {
		end := strings.IndexByte(s, '}')
		if end < 2 || !isEnvName(s[1:end]) {
			return "", 0, false
		}
		return s[1:end], end + 1, true
	}
	n := 0
	for n < len(s) && (s[n] == '_' || s[n] >= 'A' && s[n] <= 'Z' || s[n] >= 'a' && s[n] <= 'z' || n > 0 && s[n] >= '0' && s[n] <= '9') {
		n++
	}
	return s[:n], n, n > 0
}

func isEnvName(s string) bool {
	n, _, ok := envName(s)
	return ok && n == s
}
