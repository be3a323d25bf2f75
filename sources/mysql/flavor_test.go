package mysql

import (
	"bytes"
	"io"
	"log/slog"
	"testing"

	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/google/uuid"
)

// The mysql flavor's stream, without a server (none runs here): GTID
// events begin transactions, XIDs end them, the executed set grows by
// each, and positions carry the set before their transaction, in order.
func TestMySQLFlavorGTIDStream(t *testing.T) {
	s := &Source{cfg: config{flavor: "mysql", heartbeat: 0}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	gtids, err := parseGTIDs("mysql", "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-10")
	if err != nil {
		t.Fatal(err)
	}
	s.stream = &stream{file: "binlog.000007", fileNum: 7, gtids: gtids, byID: map[uint64]*table{}}
	sid := uuid.MustParse("3e11fa47-71ca-11e1-9e33-c80aa9429562")
	ev := func(logPos, size uint32, typ replication.EventType, e replication.Event) *replication.BinlogEvent {
		return &replication.BinlogEvent{Header: &replication.EventHeader{LogPos: logPos, EventSize: size, EventType: typ, Timestamp: 1700000000}, Event: e}
	}
	var positions [][]byte
	for i, gno := range []int64{11, 12} {
		base := uint32(1000 * (i + 1))
		for _, e := range []*replication.BinlogEvent{
			ev(base+80, 80, replication.GTID_EVENT, &replication.GTIDEvent{SID: sid[:], GNO: gno}),
			ev(base+150, 70, replication.QUERY_EVENT, &replication.QueryEvent{Query: []byte("BEGIN"), SlaveProxyID: 42}),
		} {
			if _, err := s.handle(e, nil); err != nil {
				t.Fatal(err)
			}
		}
		st := s.stream
		if !st.txn.open || st.txn.start.pos != uint64(base) || st.txn.thread != 42 {
			t.Fatalf("transaction %d: %+v", gno, st.txn)
		}
		if want := "3e11fa47-71ca-11e1-9e33-c80aa9429562:" + map[int64]string{11: "11", 12: "12"}[gno]; st.txn.gtid != want {
			t.Errorf("gtid %s, want %s", st.txn.gtid, want)
		}
		positions = append(positions, st.position(0, 1))
		if _, err := s.handle(ev(base+300, 31, replication.XID_EVENT, &replication.XIDEvent{}), nil); err != nil {
			t.Fatal(err)
		}
		if st.txn.open || st.passed.pos != uint64(base+300) {
			t.Fatalf("after the XID: open %v, passed %s", st.txn.open, st.passed)
		}
	}
	if got := s.stream.gtids.String(); got != "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-12" {
		t.Errorf("executed set %s", got)
	}
	if bytes.Compare(positions[0], positions[1]) >= 0 {
		t.Error("positions do not grow from transaction to transaction")
	}
	p, err := parsePosition(positions[1])
	if err != nil || p.at.gtid != "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-11" || p.at.pos != 2000 || p.at.file != "binlog.000007" {
		t.Errorf("the second transaction's position: %+v, %v (want the set before it, 1-11, and its start)", p.at, err)
	}
}
