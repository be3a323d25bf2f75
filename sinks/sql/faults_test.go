package sql

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
)

// The fault matrix: which errors are a record's (isolated, then
// dead-lettered or failing the task) and which the target's (the batch
// retried whole).
func TestFaultClasses(t *testing.T) {
	pg := func(code string) error { return fmt.Errorf("write public_t: %w", &pgconn.PgError{Code: code}) }
	my := func(code uint16) error { return fmt.Errorf("write t: %w", &mysql.MyError{Code: code}) }
	ours := errors.New("public_t.x: a float64 has no MySQL form")
	for _, tc := range []struct {
		name   string
		err    error
		record bool
		mysql  bool
	}{
		{"pg numeric out of range 22003", pg(pgerrcode.NumericValueOutOfRange), true, false},
		{"pg invalid text 22P02", pg(pgerrcode.InvalidTextRepresentation), true, false},
		{"pg not null 23502", pg(pgerrcode.NotNullViolation), true, false},
		{"pg check 23514", pg(pgerrcode.CheckViolation), true, false},
		{"pg foreign key 23503", pg(pgerrcode.ForeignKeyViolation), true, false},
		{"pg read-only 25006", pg(pgerrcode.ReadOnlySQLTransaction), false, false},
		{"pg serialization 40001", pg(pgerrcode.SerializationFailure), false, false},
		{"pg deadlock 40P01", pg(pgerrcode.DeadlockDetected), false, false},
		{"pg lock timeout 55P03", pg(pgerrcode.LockNotAvailable), false, false},
		{"pg disk full 53100", pg(pgerrcode.DiskFull), false, false},
		{"pg too many connections 53300", pg(pgerrcode.TooManyConnections), false, false},
		{"pg admin shutdown 57P01", pg(pgerrcode.AdminShutdown), false, false},
		{"pg privileges 42501", pg(pgerrcode.InsufficientPrivilege), false, false},
		{"pg undefined table 42P01", pg(pgerrcode.UndefinedTable), false, false},
		{"pg connection reset", fmt.Errorf("write: %w", syscall.ECONNRESET), false, false},
		{"pg unexpected EOF", fmt.Errorf("copy: %w", io.ErrUnexpectedEOF), false, false},
		{"pg timeout", &net.OpError{Op: "read", Err: errors.New("i/o timeout")}, false, false},
		{"pg the sink's own verdict", ours, true, false},
		{"pg no row to keep", noRowToKeep(&change{table: "t", unavailable: []string{"body"}}, map[string]any{"id": 1}), true, false},
		{"my 1048 null", my(mysql.ER_BAD_NULL_ERROR), true, true},
		{"my 1062 duplicate", my(mysql.ER_DUP_ENTRY), true, true},
		{"my 1264 out of range", my(mysql.ER_WARN_DATA_OUT_OF_RANGE), true, true},
		{"my 1265 data truncated", my(mysql.WARN_DATA_TRUNCATED), true, true},
		{"my 1366 wrong value", my(mysql.ER_TRUNCATED_WRONG_VALUE_FOR_FIELD), true, true},
		{"my 1406 too long", my(mysql.ER_DATA_TOO_LONG), true, true},
		{"my 1452 foreign key", my(mysql.ER_NO_REFERENCED_ROW_2), true, true},
		{"my 4025 check", my(erMariaDBConstraintFailed), true, true},
		{"my 1205 lock wait", my(mysql.ER_LOCK_WAIT_TIMEOUT), false, true},
		{"my 1213 deadlock", my(mysql.ER_LOCK_DEADLOCK), false, true},
		{"my 1290 read-only", my(mysql.ER_OPTION_PREVENTS_STATEMENT), false, true},
		{"my 1792 read-only transaction", my(mysql.ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION), false, true},
		{"my 1040 too many connections", my(mysql.ER_CON_COUNT_ERROR), false, true},
		{"my 2006 gone away", my(2006), false, true},
		{"my 2013 lost", my(2013), false, true},
		{"my bad connection", fmt.Errorf("execute: %w", mysql.ErrBadConn), false, true},
		{"my EOF", io.EOF, false, true},
		{"my the sink's own verdict", ours, true, true},
	} {
		got := pgRecordFault(tc.err)
		if tc.mysql {
			got = myRecordFault(tc.err)
		}
		if got != tc.record {
			t.Errorf("%s: record fault %v, want %v", tc.name, got, tc.record)
		}
	}
}
