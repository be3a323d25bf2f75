package avrobin

// Ordered is a record value as its fields' values in schema order, with
// their names beside them. Names is shared by every value of one shape
// and never changed. Where a source makes many records of one shape (a
// change event's source block) it is cheaper to build and to encode than
// a map; everything else in the value model may take it as the map Map
// returns.
type Ordered struct {
	Names  []string
	Values []any
}

// Get returns a field's value.
func (o *Ordered) Get(name string) (any, bool) {
	for i, n := range o.Names {
		if n == name {
			return o.Values[i], true
		}
	}
	return nil, false
}

// Map returns the record as a map.
func (o *Ordered) Map() map[string]any {
	if o == nil {
		return nil
	}
	m := make(map[string]any, len(o.Names))
	for i, n := range o.Names {
		m[n] = o.Values[i]
	}
	return m
}

// Plain returns v with every Ordered in it made a map, for code that
// edits the value model as maps (the transforms): maps and arrays are
// changed in place, so v is the caller's to give.
func Plain(v any) any {
	switch x := v.(type) {
	case *Ordered:
		if x == nil {
			return nil
		}
		m := make(map[string]any, len(x.Names))
		for i, n := range x.Names {
			m[n] = Plain(x.Values[i])
		}
		return m
	case map[string]any:
		for k, e := range x {
			x[k] = Plain(e)
		}
	case []any:
		for i, e := range x {
			x[i] = Plain(e)
		}
	}
	return v
}
