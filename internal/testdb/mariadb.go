package testdb

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
)

// MariaAddr is where scripts/test-services.sh runs MariaDB, its root
// without a password.
const MariaAddr = "127.0.0.1:3306"

// MariaRoot connects to the local MariaDB as root, skipping the test when
// the server is not running; the connection closes when the test ends,
// and no test restarts the server before then.
func MariaRoot(t testing.TB) *client.Conn {
	t.Helper()
	if c, err := net.DialTimeout("tcp", MariaAddr, 2*time.Second); err != nil {
		t.Skipf("MariaDB is not running (run scripts/test-services.sh): %v", err)
	} else {
		c.Close()
	}
	mariaLock.Share(t)
	c, err := client.Connect(MariaAddr, "root", "", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// MariaInUse holds the server shared until the test ends, for a test that
// connects to it by other means than MariaRoot: no test restarts it
// meanwhile.
func MariaInUse(t testing.TB) { mariaLock.Share(t) }

// MariaExec runs statements as root in database db ("" none), failing the
// test on an error.
func MariaExec(t testing.TB, db string, stmts ...string) {
	t.Helper()
	c := MariaRoot(t)
	if db != "" {
		if err := c.UseDB(db); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range stmts {
		if _, err := c.Execute(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// MariaDB makes a database on the local MariaDB, dropped when the test
// ends, and returns its name; prefix names the package's databases.
func MariaDB(t testing.TB, prefix string) string {
	t.Helper()
	db := fmt.Sprintf("%s_%d", prefix, rand.IntN(1e9))
	MariaExec(t, "", "create database "+db)
	t.Cleanup(func() {
		c, err := client.Connect(MariaAddr, "root", "", "")
		if err == nil {
			c.Execute("drop database " + db)
			c.Close()
		}
	})
	return db
}

// MariaUser makes a user with password pw on the local MariaDB, given
// grants (each with %u for the user, such as "grant select on d.* to %u"),
// dropped when the test ends, and returns its name.
func MariaUser(t testing.TB, grants ...string) string {
	t.Helper()
	user := fmt.Sprintf("eddy_u%d", rand.IntN(1e9))
	who := "'" + user + "'@'127.0.0.1'"
	stmts := []string{"create user " + who + " identified by 'pw'"}
	for _, g := range grants {
		stmts = append(stmts, strings.ReplaceAll(g, "%u", who))
	}
	MariaExec(t, "", stmts...)
	t.Cleanup(func() {
		c, err := client.Connect(MariaAddr, "root", "", "")
		if err == nil {
			c.Execute("drop user " + who)
			c.Close()
		}
	})
	return user
}

// MariaKill ends every session of user (a binlog dump included), as a
// failover or a network cut does.
func MariaKill(t testing.TB, user string) {
	t.Helper()
	root := MariaRoot(t)
	res, err := root.Execute("select id from information_schema.processlist where user = ?", user)
	if err != nil {
		t.Fatal(err)
	}
	for i := range res.RowNumber() {
		id, _ := res.GetInt(i, 0)
		root.Execute(fmt.Sprintf("kill %d", id))
	}
}

// The local MariaDB's binlog is one for every package's tests: a test
// that changes it for the whole server (purges it, changes its format)
// holds MariaBinlogExclusive, and a test that reads it through
// mysql-source holds MariaBinlogShared, so the two never overlap, across
// packages too. A test that restarts the server holds MariaRestart,
// which waits for every test using the server (see Lock). Within a
// process, a test under an exclusive hold (its subtests, say) needs no
// shared one.
var (
	mariaLock  = &Lock{Path: "/tmp/eddy-test-mariadb.lock"}
	binlogLock = &Lock{Path: "/tmp/eddy-test-mariadb-binlog.lock"}
)

// MariaBinlogShared holds the binlog lock shared until the test ends.
func MariaBinlogShared(t testing.TB) {
	mariaLock.Share(t)
	binlogLock.Share(t)
}

// MariaBinlogExclusive holds the binlog lock alone until the test ends.
func MariaBinlogExclusive(t testing.TB) {
	mariaLock.Share(t)
	binlogLock.Alone(t)
}

// MariaRestart holds the server alone until the test ends, so that it may
// stop and start MariaDB under no other test; call it first in the test.
func MariaRestart(t testing.TB) {
	mariaLock.Alone(t)
	binlogLock.Alone(t)
}
