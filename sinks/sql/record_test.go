package sql

import (
	"testing"

	"github.com/eddy-cdc/eddy/connect"
	elog "github.com/eddy-cdc/eddy/log"
)

// A truncate applied in one Write supersedes, in later Writes, the
// records of other partitions from before it, and only those, even though
// the fetched bytes its position came from are overwritten in between.
func TestTruncateOutlivesTheFetchBuffer(t *testing.T) {
	s := newBase(connect.Params{}, connect.Env{Connector: "c"})
	s.template, s.pkMode, s.deletes = "${schema}_${table}", "record_key", true
	buf := []byte{0x01, 5, 0x01, 7, 0x01, 9} // positions as they sit in a fetch
	rec := func(pos []byte, value any) connect.Record {
		return connect.Record{Topic: "shop.public.orders", Key: map[string]any{"id": 1}, Value: value,
			Headers: []elog.Header{{Key: connect.HeaderPosition, Value: pos}}}
	}
	truncate := map[string]any{"op": "t", "source": map[string]any{"schema": "public", "table": "orders"}}
	cs, err := s.changes([]connect.Record{rec(buf[2:4], truncate)})
	if err != nil || len(cs) != 1 || !cs[0].truncate {
		t.Fatalf("changes of a truncate: %v %+v", err, cs)
	}
	s.keepTruncates(map[string][]byte{cs[0].table: cs[0].pos}) // committed
	copy(buf, []byte{0x01, 0xff, 0x01, 0xff, 0x01, 0xff})      // the next fetch reuses the buffer

	row := map[string]any{"op": "c", "after": map[string]any{"id": 1}, "source": map[string]any{"schema": "public", "table": "orders"}}
	cs, err = s.changes([]connect.Record{rec([]byte{0x01, 8}, row)})
	if err != nil || len(cs) != 1 {
		t.Fatalf("a record after the truncate was dropped: %v %+v", err, cs)
	}
	cs, err = s.changes([]connect.Record{rec([]byte{0x01, 6}, row)})
	if err != nil || len(cs) != 0 {
		t.Fatalf("a record before the truncate was kept: %v %+v", err, cs)
	}
}
