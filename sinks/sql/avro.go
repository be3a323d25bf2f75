package sql

import (
	"fmt"
	"sort"
	"strconv"

	"github.com/hamba/avro/v2"

	"github.com/eddy-cdc/eddy/internal/avrobin"
)

// keyIdent reads a raw key's identity: the bytes appendChangeKey writes
// for the decoded key, so raw and decoded keys of one row collapse
// alike. It covers keys of up to 8 long, int or string fields (no
// logical types), the commonest keys by far; others are decoded.
type keyIdent struct {
	kinds []avro.Type // per field, in schema order
	names []string    // per field
	order []int       // the fields by name, as sortedNames orders them
}

func compileKeyIdent(s avro.Schema) *keyIdent {
	rs, ok := s.(*avro.RecordSchema)
	if !ok || len(rs.Fields()) == 0 || len(rs.Fields()) > 8 {
		return nil
	}
	k := &keyIdent{}
	for i, f := range rs.Fields() {
		t := f.Type()
		if l, ok := t.(avro.LogicalTypeSchema); ok && l.Logical() != nil {
			return nil
		}
		switch t.Type() {
		case avro.Int, avro.Long, avro.String:
		default:
			return nil
		}
		if _, ok := t.(*avro.PrimitiveSchema); !ok {
			return nil
		}
		k.kinds = append(k.kinds, t.Type())
		k.names = append(k.names, f.Name())
		k.order = append(k.order, i)
	}
	sort.SliceStable(k.order, func(a, b int) bool { return k.names[k.order[a]] < k.names[k.order[b]] })
	return k
}

// append writes the identity of the key in body.
func (k *keyIdent) append(r *avrobin.Reader, dst, body []byte) ([]byte, error) {
	var ints [8]int64
	var strs [8][]byte
	r.Reset(body)
	for i, t := range k.kinds {
		var err error
		if t == avro.String {
			strs[i], err = r.Bytes()
		} else {
			ints[i], err = r.Long()
		}
		if err != nil {
			return dst, fmt.Errorf("key: %w", err)
		}
	}
	for _, i := range k.order {
		dst = append(append(dst, k.names[i]...), '=')
		if k.kinds[i] == avro.String {
			dst = append(dst, strs[i]...)
		} else {
			dst = strconv.AppendInt(dst, ints[i], 10)
		}
		if len(k.kinds) > 1 {
			dst = append(dst, 0)
		}
	}
	return dst, nil
}
