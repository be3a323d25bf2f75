package s3

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// pathTemplate is the path config, parsed once: literal text and
// variables.
type pathTemplate struct {
	parts   []pathPart
	timed   bool // it names a time field
	byTable bool // it names the table or schema
}

type pathPart struct {
	lit string
	v   string // "" for a literal
}

var pathVars = map[string]bool{"topic": true, "table": true, "schema": true, "partition": true,
	"yyyy": true, "MM": true, "dd": true, "HH": true, "mm": true}

func parsePath(s string) (*pathTemplate, error) {
	t := &pathTemplate{}
	for s != "" {
		i := strings.Index(s, "${")
		if i < 0 {
			t.parts = append(t.parts, pathPart{lit: s})
			break
		}
		if i > 0 {
			t.parts = append(t.parts, pathPart{lit: s[:i]})
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("%q: an unclosed ${", s)
		}
		v := s[i+2 : i+j]
		if !pathVars[v] {
			return nil, fmt.Errorf("${%s} is not a variable: use ${topic}, ${table}, ${schema}, ${partition}, ${yyyy}, ${MM}, ${dd}, ${HH} or ${mm}", v)
		}
		switch v {
		case "yyyy", "MM", "dd", "HH", "mm":
			t.timed = true
		case "table", "schema":
			t.byTable = true
		}
		t.parts = append(t.parts, pathPart{v: v})
		s = s[i+j+1:]
	}
	return t, nil
}

// pathVals are what a record gives the template.
type pathVals struct {
	topic, schema, table string
	partition            int
	at                   time.Time // in the configured zone
}

func (t *pathTemplate) render(dst []byte, v *pathVals) []byte {
	for _, p := range t.parts {
		switch p.v {
		case "":
			dst = append(dst, p.lit...)
		case "topic":
			dst = append(dst, v.topic...)
		case "table":
			dst = append(dst, v.table...)
		case "schema":
			dst = append(dst, v.schema...)
		case "partition":
			dst = strconv.AppendInt(dst, int64(v.partition), 10)
		case "yyyy":
			dst = appendPadded(dst, v.at.Year(), 4)
		case "MM":
			dst = appendPadded(dst, int(v.at.Month()), 2)
		case "dd":
			dst = appendPadded(dst, v.at.Day(), 2)
		case "HH":
			dst = appendPadded(dst, v.at.Hour(), 2)
		case "mm":
			dst = appendPadded(dst, v.at.Minute(), 2)
		}
	}
	return dst
}

func appendPadded(dst []byte, n, width int) []byte {
	s := strconv.Itoa(n)
	for i := len(s); i < width; i++ {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}

// objectKey is where a file goes: prefix, path, and the name from topic,
// partition and first offset.
func objectKey(prefix, path, topic string, partition int, first int64, ext string) string {
	var b strings.Builder
	if prefix != "" {
		b.WriteString(strings.TrimSuffix(prefix, "/"))
		b.WriteByte('/')
	}
	if path = strings.Trim(path, "/"); path != "" {
		b.WriteString(path)
		b.WriteByte('/')
	}
	fmt.Fprintf(&b, "%s+%d+%020d%s", topic, partition, first, ext)
	return b.String()
}
