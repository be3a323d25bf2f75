package mysql

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// Positions. Every position starts with a fixed part that orders it among
// the connector's positions (bytes.Compare), then the binlog coordinates
// to resume from:
//
//	snapshot: generation (4), 0x00, epoch (8), table (4), row (8), coords of the snapshot
//	stream:   generation (4), 0x01, file number (4), transaction start (8), row (8), coords
//
// The generation goes up with every snapshot taken again (after a purged
// binlog, or a snapshot a crash cut off), so the new snapshot's reads and
// the stream after them sort after everything the log already holds: the
// runtime never takes them for records it has.
//
// A stream position's coords are the file, the offset where its
// transaction begins, and the GTID set (MySQL, uuid:interval) or list
// (MariaDB, domain-server-seq) of the transactions before it: a restart
// reads the transaction again from there and drops the rows at or before
// the position. Row 0 is no record: it marks a place between
// transactions (a heartbeat's position marker), so the first row of the
// transaction starting there sorts after it.
const (
	posSnapshot = 0x00
	posStream   = 0x01
	fixedLen    = 25
	markAt      = 13 // where a snapshot position's table and row begin
)

// snapshotEndMark is the table and row of the last snapshot record, the
// greatest of its epoch: a stored position ending so says the snapshot is
// complete.
var snapshotEndMark = bytes.Repeat([]byte{0xff}, 12)

// coords are binlog coordinates with the GTIDs executed before them.
type coords struct {
	file string
	pos  uint64
	gtid string // "" when the server keeps no GTIDs
}

func (c coords) String() string {
	if c.gtid == "" {
		return fmt.Sprintf("%s:%d", c.file, c.pos)
	}
	return fmt.Sprintf("%s:%d (gtid %s)", c.file, c.pos, c.gtid)
}

func (c coords) append(b []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(c.file)))
	b = append(b, c.file...)
	b = binary.AppendUvarint(b, c.pos)
	b = binary.AppendUvarint(b, uint64(len(c.gtid)))
	return append(b, c.gtid...)
}

func snapshotPos(gen uint32, epoch uint64, table uint32, row uint64, at coords) []byte {
	b := make([]byte, 0, fixedLen+len(at.file)+len(at.gtid)+8)
	b = binary.BigEndian.AppendUint32(b, gen)
	b = append(b, posSnapshot)
	b = binary.BigEndian.AppendUint64(b, epoch)
	b = binary.BigEndian.AppendUint32(b, table)
	b = binary.BigEndian.AppendUint64(b, row)
	return at.append(b)
}

// snapshotEnd is a snapshot position made the snapshot's last.
func snapshotEnd(pos []byte) []byte {
	return append(append(pos[:markAt:markAt], snapshotEndMark...), pos[fixedLen:]...)
}

func streamPos(gen, fileNum uint32, row uint64, txn coords) []byte {
	return appendStreamPos(nil, gen, fileNum, row, txn.pos, txn.append(nil))
}

// appendStreamPos appends a stream position, its coords already encoded
// (coords.append).
func appendStreamPos(b []byte, gen, fileNum uint32, row, txnPos uint64, encoded []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, gen)
	b = append(b, posStream)
	b = binary.BigEndian.AppendUint32(b, fileNum)
	b = binary.BigEndian.AppendUint64(b, txnPos)
	b = binary.BigEndian.AppendUint64(b, row)
	return append(b, encoded...)
}

// position is a stored position taken apart.
type position struct {
	gen  uint32
	kind byte
	done bool // a snapshot position: the snapshot's last record
	at   coords
}

var errPosition = errors.New("not a mysql-source position")

func parsePosition(p []byte) (position, error) {
	if len(p) < fixedLen || (p[4] != posSnapshot && p[4] != posStream) {
		return position{}, fmt.Errorf("%w: %x", errPosition, p)
	}
	out := position{gen: binary.BigEndian.Uint32(p), kind: p[4], done: p[4] == posSnapshot && bytes.Equal(p[markAt:fixedLen], snapshotEndMark)}
	rest := p[fixedLen:]
	str := func() (string, bool) {
		n, k := binary.Uvarint(rest)
		if k <= 0 || uint64(len(rest)-k) < n {
			return "", false
		}
		s := string(rest[k : k+int(n)])
		rest = rest[k+int(n):]
		return s, true
	}
	var ok bool
	if out.at.file, ok = str(); !ok {
		return position{}, fmt.Errorf("%w: %x", errPosition, p)
	}
	n, k := binary.Uvarint(rest)
	if k <= 0 {
		return position{}, fmt.Errorf("%w: %x", errPosition, p)
	}
	out.at.pos, rest = n, rest[k:]
	if out.at.gtid, ok = str(); !ok || len(rest) != 0 {
		return position{}, fmt.Errorf("%w: %x", errPosition, p)
	}
	return out, nil
}

// fileNumber is the sequence number of a binlog file (mysql-bin.000042 is
// 42): binlog files sort by it.
func fileNumber(file string) (uint32, error) {
	i := strings.LastIndexByte(file, '.')
	n, err := strconv.ParseUint(file[i+1:], 10, 32)
	if i < 0 || err != nil {
		return 0, fmt.Errorf("binlog file %q has no sequence number", file)
	}
	return uint32(n), nil
}

// gtidSet is the GTIDs executed so far, in the flavor's notation; nil
// when the server keeps none.
type gtidSet struct {
	flavor string
	set    mysql.GTIDSet
}

func parseGTIDs(flavor, s string) (gtidSet, error) {
	if strings.TrimSpace(s) == "" {
		return gtidSet{flavor: flavor}, nil
	}
	set, err := mysql.ParseGTIDSet(flavor, s)
	if err != nil {
		return gtidSet{}, fmt.Errorf("parse %s GTIDs %q: %w", flavor, s, err)
	}
	return gtidSet{flavor: flavor, set: set}, nil
}

func (g gtidSet) String() string {
	if g.set == nil {
		return ""
	}
	return g.set.String()
}

// add records one more executed transaction's GTID (uuid:n for MySQL,
// domain-server-seq for MariaDB).
func (g *gtidSet) add(gtid string) error {
	if g.set == nil {
		set, err := mysql.ParseGTIDSet(g.flavor, "")
		if err != nil {
			return err
		}
		g.set = set
	}
	if err := g.set.Update(gtid); err != nil {
		return fmt.Errorf("add GTID %s: %w", gtid, err)
	}
	return nil
}

// contains says whether every GTID of o is in g: the server still has
// what a position needs when its executed set contains the position's.
func (g gtidSet) contains(o gtidSet) bool {
	if o.set == nil {
		return true
	}
	if g.set == nil {
		return false
	}
	return g.set.Contain(o.set)
}

// Captured says where in the binlog a stored position of the source
// stands: when it is stored, every transaction that began before
// file:offset is durable in the log. ok is false for a snapshot's
// positions, which stand for no place in the stream yet, and for what is
// not a position of this source. The outbox cleanup job reads it.
func Captured(stored []byte) (file string, offset uint64, ok bool) {
	p, err := parsePosition(stored)
	if err != nil || p.kind != posStream {
		return "", 0, false
	}
	return p.at.file, p.at.pos, true
}

// CompareBinlog orders binlog coordinates: by the files' sequence
// numbers, then offsets.
func CompareBinlog(fileA string, offA uint64, fileB string, offB uint64) (int, error) {
	a, err := fileNumber(fileA)
	if err != nil {
		return 0, err
	}
	b, err := fileNumber(fileB)
	if err != nil {
		return 0, err
	}
	if a != b {
		return cmp.Compare(a, b), nil
	}
	return cmp.Compare(offA, offB), nil
}
