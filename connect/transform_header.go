package connect

import (
	"slices"
	"strings"

	elog "github.com/eddy-cdc/eddy/log"
)

// insert_header: fixed headers, with ${topic} and ${op} per record.
type insertHeader struct {
	keys, vals []string
	dynamic    []bool
}

func newInsertHeader(p Params) *insertHeader {
	h := &insertHeader{}
	hs := p.Map("headers")
	keys := make([]string, 0, len(hs))
	for k := range hs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		h.keys = append(h.keys, k)
		h.vals = append(h.vals, hs[k])
		h.dynamic = append(h.dynamic, strings.Contains(hs[k], "${"))
	}
	return h
}

func (h *insertHeader) Apply(r *Record) (bool, error) {
	for i, k := range h.keys {
		v := h.vals[i]
		if h.dynamic[i] {
			op := ""
			if m, ok := r.Value.(map[string]any); ok {
				op, _ = m["op"].(string)
			}
			v = strings.NewReplacer("${topic}", r.Topic, "${op}", op).Replace(v)
		}
		r.Headers = append(r.Headers, elog.Header{Key: k, Value: []byte(v)})
	}
	return true, nil
}
