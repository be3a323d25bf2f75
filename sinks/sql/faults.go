package sql

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eddy-cdc/eddy/connect"
)

// Whose fault a failed write is decides what the sink does with it
// (DESIGN.md, "Error classes"):
//
//   - The record's: a value the target can never accept (a type or range
//     error, a constraint it breaks), or one the sink cannot render for
//     the target. The batch is halved to find the record (isolate), which
//     is then dead-lettered or fails the task, per errors.tolerance.
//   - The target's: everything else (read-only after a failover, a
//     serialization failure or deadlock, a lock timeout, a full disk, too
//     many connections, a shutdown, a revoked privilege, a missing table,
//     a lost connection). The whole batch goes back to the runtime, which
//     retries it with backoff until errors.retry_timeout, shows the error
//     in the task's status and in eddy_connector_target_failing, and then
//     fails the task. Nothing is dead-lettered for the target's sake.
//
// A server's error is classified by its code alone; an error without one
// is the target's when it is a broken connection, else the sink's own
// verdict on the record (a value with no form in the target, a change
// that lacks columns for a row the target does not have).

// targetFault says whether a failed write is the target's: not a record
// the runtime dead-letters (RecordError), not a stop the sink asked for
// (connect.Permanent), and not a record's fault by recordFault. Such a
// batch is retried whole, on a new connection.
func targetFault(err error, recordFault func(error) bool) bool {
	var re *connect.RecordError
	return err != nil && !errors.As(err, &re) && !connect.IsPermanent(err) && !recordFault(err)
}

// pgRecordFault says whether a postgres-sink write failed for a record's
// sake: SQLSTATE class 22 (data exception) or 23 (integrity constraint
// violation), or an error of the sink's own about a value.
func pgRecordFault(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pgerrcode.IsDataException(pe.Code) || pgerrcode.IsIntegrityConstraintViolation(pe.Code)
	}
	return !connectionFault(err)
}

// MariaDB's code for a CHECK constraint a row breaks; MySQL's is 3819.
// go-mysql names neither.
const (
	erMariaDBConstraintFailed = 4025
	erMySQLCheckViolated      = 3819
)

// myRecordFaults are the MySQL/MariaDB errors of a row the target can
// never take as it is.
var myRecordFaults = map[uint16]bool{
	mysql.ER_BAD_NULL_ERROR:                  true, // 1048
	mysql.ER_DUP_ENTRY:                       true, // 1062
	mysql.ER_WARN_DATA_OUT_OF_RANGE:          true, // 1264
	mysql.WARN_DATA_TRUNCATED:                true, // 1265: a value the column cannot hold (strict mode)
	mysql.ER_TRUNCATED_WRONG_VALUE:           true, // 1292
	mysql.ER_NO_DEFAULT_FOR_FIELD:            true, // 1364
	mysql.ER_TRUNCATED_WRONG_VALUE_FOR_FIELD: true, // 1366
	mysql.ER_DATA_TOO_LONG:                   true, // 1406
	mysql.ER_ROW_IS_REFERENCED_2:             true, // 1451
	mysql.ER_NO_REFERENCED_ROW_2:             true, // 1452
	erMySQLCheckViolated:                     true,
	erMariaDBConstraintFailed:                true,
}

// myRecordFault says whether a mysql-sink write failed for a record's
// sake: one of myRecordFaults, or an error of the sink's own about a
// value. Every other server error (1205 lock wait, 1213 deadlock, 1290
// read-only, 1792 read-only transaction, 1040 too many connections, …)
// and a lost connection (2006, 2013) are the target's.
func myRecordFault(err error) bool {
	var me *mysql.MyError
	if errors.As(err, &me) {
		return myRecordFaults[me.Code]
	}
	return !connectionFault(err) && !errors.Is(err, mysql.ErrBadConn)
}

// connectionFault says whether err is a connection that broke or timed
// out, which no record causes.
func connectionFault(err error) bool {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EPIPE),
		errors.As(err, &ne), pgconn.Timeout(err), pgconn.SafeToRetry(err):
		return true
	}
	var ce *pgconn.ConnectError
	return errors.As(err, &ce)
}
