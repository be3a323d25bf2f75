#!/usr/bin/env bash
# Prepares the services Eddy's tests talk to, idempotently: PostgreSQL with
# logical replication, MariaDB with row-based binlogs and GTIDs, versitygw
# (an S3 server) over a local directory. It installs
# a server that is missing (Debian), changes config only when it differs and
# restarts a server only when a change needs it. Safe to run again and again.
# versitygw is built from the Go module proxy at the version tools/go.mod
# pins (about 2 minutes the first time).
set -euo pipefail

log() { printf 'test-services: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  log "installing $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

wait_for() { # wait_for NAME SECONDS CMD...
  local name=$1 secs=$2; shift 2
  for _ in $(seq 1 $((secs * 5))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  log "$name did not come up within ${secs}s"; return 1
}

# ---------------------------------------------------------------- PostgreSQL
pg_prepare() {
  command -v pg_lsclusters >/dev/null || apt_install postgresql postgresql-client
  local ver
  ver=$(ls /etc/postgresql | sort -V | tail -n1)
  local conf_dir=/etc/postgresql/$ver/main
  local psql=(psql -h 127.0.0.1 -U postgres -d postgres -Atq)
  [ -d "$conf_dir" ] || { log "no PostgreSQL cluster config in $conf_dir"; return 1; }

  local restart=0 reload=0
  as_root mkdir -p "$conf_dir/conf.d"
  if ! grep -Eq "^\s*include_dir\s*=\s*'conf.d'" "$conf_dir/postgresql.conf"; then
    echo "include_dir = 'conf.d'" | as_root tee -a "$conf_dir/postgresql.conf" >/dev/null
    restart=1
  fi
  local want="# Managed by Eddy's scripts/test-services.sh
listen_addresses = '127.0.0.1'
wal_level = logical
max_replication_slots = 32
max_wal_senders = 32
"
  if [ "$(cat "$conf_dir/conf.d/95-eddy.conf" 2>/dev/null)" != "$(printf '%s' "$want")" ]; then
    printf '%s' "$want" | as_root tee "$conf_dir/conf.d/95-eddy.conf" >/dev/null
    restart=1
  fi
  local hba=$conf_dir/pg_hba.conf
  for line in "local replication all trust" "host replication all 127.0.0.1/32 trust" "host all all 127.0.0.1/32 trust"; do
    if ! grep -Eq "^\s*$(echo "$line" | sed 's/ /\\s+/g')\s*$" "$hba"; then
      # Prepend so these rules win over any stricter ones below them.
      as_root sed -i "1i $line" "$hba"
      reload=1
    fi
  done

  if ! pg_lsclusters -h | awk -v v="$ver" '$1==v && $2=="main"' | grep -q online; then
    log "starting PostgreSQL $ver"
    as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start
    restart=0 reload=0
  fi
  wait_for PostgreSQL 30 "${psql[@]}" -c 'select 1'
  local wal slots senders
  wal=$("${psql[@]}" -c 'show wal_level')
  slots=$("${psql[@]}" -c 'show max_replication_slots')
  senders=$("${psql[@]}" -c 'show max_wal_senders')
  if [ "$wal" != logical ] || [ "$slots" -lt 20 ] || [ "$senders" -lt 20 ]; then restart=1; fi
  if [ $restart = 1 ]; then
    log "restarting PostgreSQL $ver (wal_level=$wal, slots=$slots, senders=$senders)"
    as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main restart
    wait_for PostgreSQL 30 "${psql[@]}" -c 'select 1'
  elif [ $reload = 1 ]; then
    "${psql[@]}" -c 'select pg_reload_conf()' >/dev/null
  fi
  wal=$("${psql[@]}" -c 'show wal_level')
  [ "$wal" = logical ] || { log "PostgreSQL wal_level is $wal after restart"; return 1; }
  log "PostgreSQL $ver ready: wal_level=logical, slots=$("${psql[@]}" -c 'show max_replication_slots'), senders=$("${psql[@]}" -c 'show max_wal_senders')"
}

# ------------------------------------------------------------------- MariaDB
my_q() { mariadb -h 127.0.0.1 -P 3306 -uroot -N -B -e "$1"; }
my_sock() { as_root mariadb --protocol=socket -uroot -N -B -e "$1"; }

my_start() {
  as_root mkdir -p /run/mysqld
  as_root chown mysql:mysql /run/mysqld 2>/dev/null || true
  as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_for MariaDB 60 my_sock 'select 1'
}

my_stop() {
  # By executable: the pid file belongs to mysql, which start-stop-daemon
  # refuses to trust as root.
  as_root start-stop-daemon --stop --oknodo --exec /usr/sbin/mariadbd --retry 60 >/dev/null
}

my_prepare() {
  [ -x /usr/sbin/mariadbd ] || apt_install mariadb-server mariadb-client
  local cnf=/etc/mysql/my.cnf
  local block="# BEGIN eddy test-services
[mysqld]
user = mysql
bind_address = 127.0.0.1
skip_name_resolve = ON
log_bin = mysql-bin
binlog_format = ROW
binlog_row_image = FULL
binlog_row_metadata = FULL
server_id = 1
log_slave_updates = ON
gtid_strict_mode = ON
binlog_expire_logs_seconds = 604800
# END eddy test-services"
  local current
  current=$(sed -n '/^# BEGIN eddy test-services$/,/^# END eddy test-services$/p' "$cnf" 2>/dev/null || true)
  local changed=0
  if [ "$current" != "$block" ]; then
    as_root sed -i '/^# BEGIN eddy test-services$/,/^# END eddy test-services$/d' "$cnf"
    printf '\n%s\n' "$block" | as_root tee -a "$cnf" >/dev/null
    changed=1
  fi
  if ! my_sock 'select 1' >/dev/null 2>&1; then
    log "starting MariaDB"
    my_start
  elif [ $changed = 1 ] || [ "$(my_sock 'select @@log_bin, @@binlog_format, @@binlog_row_image, @@binlog_row_metadata, @@gtid_strict_mode' | tr '\t' ' ')" != "1 ROW FULL FULL 1" ]; then
    log "restarting MariaDB for row binlogs"
    my_stop
    my_start
  fi
  if ! my_q 'select 1' >/dev/null 2>&1; then
    log "letting root in over 127.0.0.1 with an empty password"
    my_sock "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''; GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; FLUSH PRIVILEGES;"
  fi
  local got
  got=$(my_q 'select @@log_bin, @@binlog_format, @@binlog_row_image, @@binlog_row_metadata, @@server_id, @@gtid_strict_mode' | tr '\t' ' ')
  [ "$got" = "1 ROW FULL FULL 1 1" ] || { log "MariaDB settings are '$got' after restart"; return 1; }
  my_q 'CREATE DATABASE IF NOT EXISTS test' >/dev/null
  log "MariaDB ready: log_bin=ON binlog_format=ROW binlog_row_image=FULL binlog_row_metadata=FULL server_id=1 gtid_strict_mode=ON"
}

# --------------------------------------------------------- versitygw (S3)
# Root credentials and address the tests use (internal/testdb/s3.go).
S3_ADDR=127.0.0.1:7070
S3_ACCESS_KEY=eddytest
S3_SECRET_KEY=eddytest-secret-key
S3_DIR=/var/lib/eddy-test/s3
S3_PIDFILE=/run/eddy-test-versitygw.pid

s3_up() { # a signed request would be refused, an unsigned one is answered
  curl -s -o /dev/null -w '%{http_code}' "http://$S3_ADDR/" | grep -q '^403$'
}

s3_prepare() {
  local tools ver bin
  tools=$(cd "$(dirname "$0")/../tools" && pwd)
  command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"
  command -v curl >/dev/null || apt_install curl
  ver=$(cd "$tools" && go list -m -f '{{.Version}}' github.com/versity/versitygw)
  bin=/usr/local/lib/eddy-test/versitygw-$ver
  if [ ! -x "$bin" ]; then
    log "building versitygw $ver (tools/go.mod)"
    local gobin
    gobin=$(mktemp -d)
    (cd "$tools" && GOBIN=$gobin go install github.com/versity/versitygw/cmd/versitygw)
    as_root mkdir -p /usr/local/lib/eddy-test
    as_root mv "$gobin/versitygw" "$bin"
    rm -rf "$gobin"
  fi
  local pid running=""
  pid=$(cat "$S3_PIDFILE" 2>/dev/null || true)
  if [ -n "$pid" ] && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$bin" ]; then running=$pid; fi
  if [ -n "$running" ] && s3_up; then
    log "versitygw $ver ready at $S3_ADDR ($S3_DIR)"
    return 0
  fi
  if [ -n "$pid" ]; then as_root kill "$pid" 2>/dev/null || true; fi
  if s3_up; then log "something else answers at $S3_ADDR"; return 1; fi
  as_root mkdir -p "$S3_DIR"
  log "starting versitygw $ver at $S3_ADDR"
  as_root start-stop-daemon --start --background --make-pidfile --pidfile "$S3_PIDFILE" \
    --output /var/log/eddy-test-versitygw.log --exec "$bin" -- \
    --port "$S3_ADDR" --access "$S3_ACCESS_KEY" --secret "$S3_SECRET_KEY" --region us-east-1 --quiet \
    posix "$S3_DIR"
  wait_for versitygw 30 s3_up
  log "versitygw $ver ready at $S3_ADDR ($S3_DIR)"
}

# ------------------------------------------------- DuckDB (a query engine)
# The S3 sink's tests read its Parquet files back with a real query engine:
# DuckDB's Python package from PyPI, at a pinned version, in a venv of its
# own (internal/testdb/duckdb.go finds it there).
DUCKDB_VERSION=1.5.6
DUCKDB_VENV=/usr/local/lib/eddy-test/duckdb-$DUCKDB_VERSION

duckdb_prepare() {
  if [ -x "$DUCKDB_VENV/bin/python" ] && "$DUCKDB_VENV/bin/python" -c 'import duckdb' 2>/dev/null; then
    log "DuckDB $DUCKDB_VERSION ready ($DUCKDB_VENV)"
    return 0
  fi
  command -v python3 >/dev/null || apt_install python3 python3-venv
  log "installing DuckDB $DUCKDB_VERSION from PyPI into $DUCKDB_VENV"
  as_root rm -rf "$DUCKDB_VENV.tmp"
  as_root mkdir -p /usr/local/lib/eddy-test
  as_root python3 -m venv "$DUCKDB_VENV.tmp"
  as_root "$DUCKDB_VENV.tmp/bin/pip" install --quiet --disable-pip-version-check "duckdb==$DUCKDB_VERSION"
  as_root rm -rf "$DUCKDB_VENV"
  as_root mv "$DUCKDB_VENV.tmp" "$DUCKDB_VENV"
  # a venv's scripts name its directory: make them again where it now is
  as_root python3 -m venv "$DUCKDB_VENV"
  "$DUCKDB_VENV/bin/python" -c 'import duckdb' || { log "DuckDB does not import"; return 1; }
  log "DuckDB $DUCKDB_VERSION ready ($DUCKDB_VENV)"
}

pg_prepare
my_prepare
s3_prepare
duckdb_prepare
