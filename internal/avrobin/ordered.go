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
