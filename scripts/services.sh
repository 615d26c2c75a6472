#!/usr/bin/env bash
# Services the tests need beyond the ones the machine starts (PostgreSQL, MariaDB, Redis,
# RabbitMQ, Mosquitto, NATS). Idempotent; everything listens on 127.0.0.1 only.
#
#   scripts/services.sh up NAME...   install what is missing, start NAME, wait until it answers
#   scripts/services.sh env          the addresses, as KEY=value lines
#   scripts/services.sh down NAME... stop NAME
#
# Names:
#   rabbitmq  RabbitMQ (machine-provided; started when down)    FDI_RABBITMQ=127.0.0.1:5672
#   redis     Redis 7 (machine-provided; started when down)      FDI_REDIS=127.0.0.1:6379
#   kafka     tansu, a Kafka-protocol broker on SQLite storage   FDI_KAFKA=127.0.0.1:9092
#             (installed once per machine with cargo: ~20 min on a cold 2-core machine; its
#             in-memory storage is not used: it skips records when a consumer group resumes
#             inside a record batch, see ../shared/SERVICES.md)
#   pg-cdc    a second PostgreSQL (the installed one, not the      FDI_PG_CDC=postgres://postgres@127.0.0.1:5433/test
#             machine's 5432 cluster) for change-data-capture: wal_level=logical, 20 replication
#             slots / WAL senders, trust auth (also replication) for postgres@127.0.0.1; data,
#             socket and log in $STATE/pg-cdc, run as the postgres OS user
#   mysql-cdc a second MariaDB (not the machine's 3306 one) for     FDI_MYSQL_CDC=mysql://root@127.0.0.1:3307/test
#             change-data-capture: binlog on (ROW, full row image), server-id 1, local-infile,
#             root without password; data in $STATE/mysql-cdc, socket/pid/log $STATE/mysql-cdc.*
#             TLS offered (not required) with a test CA     FDI_MYSQL_CDC_TLS=$STATE/mysql-cdc-tls
#             (ca.pem; server cert for 127.0.0.1 / localhost; client.pem + client-key.pem for
#             the user x509 REQUIRE X509)
#   Both are created on the first `up` (a few seconds), started again when their data dir is
#   there but the server is not (after a reboot), and recreated when the data dir is gone.
set -euo pipefail

STATE=${FDI_SERVICES_DIR:-/var/tmp/fdi-services}
KAFKA_PORT=9092
PG_CDC_PORT=5433
MYSQL_CDC_PORT=3307
TANSU_VERSION=0.6.0
mkdir -p "$STATE"

log() { echo "[services] $*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # name port seconds
  for _ in $(seq 1 "$3"); do
    if port_open "$2"; then log "$1 is up on 127.0.0.1:$2"; return 0; fi
    sleep 1
  done
  log "$1 did not come up on 127.0.0.1:$2"
  return 1
}

up_rabbitmq() {
  if ! port_open 5672; then
    log "starting RabbitMQ"
    rabbitmq-server -detached || true
  fi
  wait_port RabbitMQ 5672 90
}

up_redis() {
  if ! port_open 6379; then
    log "starting Redis"
    mkdir -p "$STATE/redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
      --dir "$STATE/redis" --logfile "$STATE/redis.log" || true
  fi
  wait_port Redis 6379 30
}

up_kafka() {
  if ! command -v tansu >/dev/null 2>&1 && [[ ! -x "$HOME/.cargo/bin/tansu" ]]; then
    log "installing tansu $TANSU_VERSION (cargo, SQLite storage; ~20 min on a cold machine)"
    cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore,libsql
  fi
  local bin
  bin=$(command -v tansu || echo "$HOME/.cargo/bin/tansu")
  if ! port_open "$KAFKA_PORT"; then
    log "starting tansu on 127.0.0.1:$KAFKA_PORT"
    # tansu resolves a sqlite:// path against its working directory. The subshell execs it, so
    # the pid recorded is tansu's (a `cd && nohup … &` list used to leave a bash waiting on
    # tansu, holding the service lock of fd 9 and recorded in place of tansu).
    (cd "$STATE" && exec nohup "$bin" broker \
      --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
      --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
      --storage-engine "sqlite://tansu.db" \
      >"$STATE/tansu.log" 2>&1) 9>&- &
    echo $! >"$STATE/tansu.pid"
  fi
  wait_port Kafka "$KAFKA_PORT" 30
}

down_kafka() {
  if [[ -f "$STATE/tansu.pid" ]]; then
    kill "$(cat "$STATE/tansu.pid")" 2>/dev/null || true
    rm -f "$STATE/tansu.pid"
  fi
}

down_rabbitmq() { rabbitmqctl stop >/dev/null 2>&1 || true; }
down_redis() { redis-cli -p 6379 shutdown nosave >/dev/null 2>&1 || true; }

# --- pg-cdc: a second PostgreSQL cluster on $PG_CDC_PORT -------------------------------------

PG_CDC_DIR="$STATE/pg-cdc"         # owned by the postgres OS user
PG_CDC_DATA="$PG_CDC_DIR/data"
PG_CDC_SOCK="$PG_CDC_DIR/run"

lock() { # name: one up/down of a service at a time (fd 9; the servers started get 9>&-)
  exec 9>"$STATE/.$1.lock"
  flock 9
}

pg_bin() { # the newest installed PostgreSQL's bin dir
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [[ -n "$d" ]] || { log "no PostgreSQL under /usr/lib/postgresql/*/bin"; return 1; }
  echo "$d"
}

as_postgres() { # initdb/postgres refuse to run as root
  if [[ $(id -u) -eq 0 ]]; then (cd / && runuser -u postgres -- "$@"); else (cd / && "$@"); fi
}

pg_cdc_ready() { "$(pg_bin)/pg_isready" -q -h 127.0.0.1 -p "$PG_CDC_PORT" >/dev/null 2>&1; }

listener_pid() { # port -> pid of the process listening on 127.0.0.1:port (empty when none)
  ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2
}

stop_orphan() { # name port expected-command: a server whose data dir was deleted under it
  local pid
  pid=$(listener_pid "$2")
  if [[ -n "$pid" && "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$3" ]]; then
    log "$1: data dir is gone but $3 (pid $pid) still listens on $2; stopping it"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do port_open "$2" || return 0; sleep 1; done
    log "$1: pid $pid did not stop"; return 1
  fi
  log "$1: port $2 is taken by something else"; return 1
}

pg_cdc_config() { # (re)written on every up: our settings and who may connect
  cat >"$PG_CDC_DATA/fdi-cdc.conf" <<CONF
# written by scripts/services.sh (up pg-cdc) on every start; edit the script, not this file
listen_addresses = '127.0.0.1'
port = $PG_CDC_PORT
unix_socket_directories = '$PG_CDC_SOCK'
wal_level = logical
max_replication_slots = 20
max_wal_senders = 20
CONF
  cat >"$PG_CDC_DATA/pg_hba.conf" <<CONF
# written by scripts/services.sh (up pg-cdc) on every start
local   all          all                   trust
local   replication  all                   trust
host    all          postgres  127.0.0.1/32  trust
host    replication  postgres  127.0.0.1/32  trust
CONF
  chown postgres:postgres "$PG_CDC_DATA/fdi-cdc.conf" "$PG_CDC_DATA/pg_hba.conf" 2>/dev/null || true
}

up_pg_cdc() {
  local bin
  lock pg-cdc
  bin=$(pg_bin)
  if [[ ! -f "$PG_CDC_DATA/PG_VERSION" ]] && pg_cdc_ready; then
    stop_orphan pg-cdc "$PG_CDC_PORT" postgres
  fi
  if pg_cdc_ready; then
    log "pg-cdc is already running on 127.0.0.1:$PG_CDC_PORT"
  else
    if [[ ! -f "$PG_CDC_DATA/PG_VERSION" ]]; then
      log "pg-cdc: creating a cluster in $PG_CDC_DATA ($bin/initdb)"
      rm -rf "$PG_CDC_DIR"
      mkdir -p "$PG_CDC_DATA" "$PG_CDC_SOCK"
      chown -R postgres:postgres "$PG_CDC_DIR" 2>/dev/null || true
      chmod 700 "$PG_CDC_DATA"
      as_postgres "$bin/initdb" -D "$PG_CDC_DATA" -U postgres --auth=trust \
        --encoding=UTF8 --locale=C.UTF-8 >"$PG_CDC_DIR/initdb.log" 2>&1 \
        || { log "pg-cdc: initdb failed, see $PG_CDC_DIR/initdb.log"; return 1; }
      echo "include = 'fdi-cdc.conf'" >>"$PG_CDC_DATA/postgresql.conf"
    fi
    mkdir -p "$PG_CDC_SOCK"
    chown postgres:postgres "$PG_CDC_DIR" "$PG_CDC_SOCK" 2>/dev/null || true
    pg_cdc_config
    log "pg-cdc: starting PostgreSQL on 127.0.0.1:$PG_CDC_PORT"
    as_postgres "$bin/pg_ctl" -D "$PG_CDC_DATA" -l "$PG_CDC_DIR/postgres.log" -w -t 60 start >/dev/null 9>&- \
      || { log "pg-cdc: did not start, see $PG_CDC_DIR/postgres.log"; return 1; }
    log "pg-cdc is up on 127.0.0.1:$PG_CDC_PORT"
  fi
  "$bin/psql" -h 127.0.0.1 -p "$PG_CDC_PORT" -U postgres -d postgres -tAc \
      "select 1 from pg_database where datname = 'test'" | grep -q 1 \
    || "$bin/psql" -h 127.0.0.1 -p "$PG_CDC_PORT" -U postgres -d postgres -qc "create database test"
}

down_pg_cdc() {
  lock pg-cdc
  if [[ -f "$PG_CDC_DATA/postmaster.pid" ]]; then
    as_postgres "$(pg_bin)/pg_ctl" -D "$PG_CDC_DATA" -m fast -w stop >/dev/null 2>&1 || true
  fi
}

# --- mysql-cdc: a second MariaDB server on $MYSQL_CDC_PORT -----------------------------------

MYSQL_CDC_DATA="$STATE/mysql-cdc"
MYSQL_CDC_SOCK="$STATE/mysql-cdc.sock"
MYSQL_CDC_PID="$STATE/mysql-cdc.pid"
MYSQL_CDC_LOG="$STATE/mysql-cdc.log"

MYSQL_CDC_TLS="$STATE/mysql-cdc-tls"

mysql_cdc_ready() {
  mariadb --no-defaults -h 127.0.0.1 -P "$MYSQL_CDC_PORT" -uroot -e 'select 1' >/dev/null 2>&1
}

# A test CA, a server certificate for 127.0.0.1 / localhost and a client certificate, made once.
mysql_cdc_certs() {
  [[ -s "$MYSQL_CDC_TLS/client-key.pem" ]] && return 0
  log "mysql-cdc: making a test CA and certificates in $MYSQL_CDC_TLS"
  local d="$MYSQL_CDC_TLS.tmp"
  rm -rf "$d" && mkdir -p "$d"
  (
    cd "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=fdi test CA" \
      -keyout ca-key.pem -out ca.pem
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server-key.pem -out server.csr
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 3650 \
      -extfile server.ext -out server.pem
    openssl req -newkey rsa:2048 -nodes -subj "/CN=x509" -keyout client-key.pem -out client.csr
    printf 'basicConstraints=CA:FALSE\n' >client.ext
    openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 3650 \
      -extfile client.ext -out client.pem
  ) >"$STATE/mysql-cdc-certs.log" 2>&1 || { log "mysql-cdc: openssl failed, see $STATE/mysql-cdc-certs.log"; return 1; }
  rm -rf "$MYSQL_CDC_TLS" && mv "$d" "$MYSQL_CDC_TLS"
}

mysql_cdc_has_tls() {
  [[ "$(mariadb --no-defaults -h 127.0.0.1 -P "$MYSQL_CDC_PORT" -uroot -N -e 'select @@have_ssl' 2>/dev/null)" == YES ]]
}

up_mysql_cdc() {
  lock mysql-cdc
  # --no-defaults everywhere: /etc/mysql/my.cnf is the machine's 3306 server's (datadir, pid, log).
  if [[ ! -d "$MYSQL_CDC_DATA/mysql" ]] && port_open "$MYSQL_CDC_PORT"; then
    stop_orphan mysql-cdc "$MYSQL_CDC_PORT" mariadbd
  fi
  mysql_cdc_certs
  if mysql_cdc_ready && ! mysql_cdc_has_tls; then
    # Started by an earlier version of this script: start it again with TLS.
    log "mysql-cdc: restarting it with TLS"
    mariadb-admin --no-defaults -h 127.0.0.1 -P "$MYSQL_CDC_PORT" -uroot shutdown >/dev/null 2>&1 || true
    for _ in $(seq 1 30); do port_open "$MYSQL_CDC_PORT" || break; sleep 1; done
  fi
  if mysql_cdc_ready; then
    log "mysql-cdc is already running on 127.0.0.1:$MYSQL_CDC_PORT"
  else
    if [[ ! -d "$MYSQL_CDC_DATA/mysql" ]]; then
      log "mysql-cdc: creating a data dir in $MYSQL_CDC_DATA (mariadb-install-db)"
      rm -rf "$MYSQL_CDC_DATA"
      mkdir -p "$MYSQL_CDC_DATA"
      mariadb-install-db --no-defaults --datadir="$MYSQL_CDC_DATA" --user=root \
        --auth-root-authentication-method=normal --skip-test-db >"$STATE/mysql-cdc-install.log" 2>&1 \
        || { log "mysql-cdc: mariadb-install-db failed, see $STATE/mysql-cdc-install.log"; return 1; }
    fi
    if port_open "$MYSQL_CDC_PORT"; then
      log "mysql-cdc: 127.0.0.1:$MYSQL_CDC_PORT is open but root cannot log in; not starting a second server"
      return 1
    fi
    log "mysql-cdc: starting MariaDB on 127.0.0.1:$MYSQL_CDC_PORT"
    # setsid: not in the caller's process group, so a Ctrl-C of the caller leaves it running.
    setsid nohup mariadbd --no-defaults --datadir="$MYSQL_CDC_DATA" --port="$MYSQL_CDC_PORT" \
      --bind-address=127.0.0.1 --socket="$MYSQL_CDC_SOCK" --pid-file="$MYSQL_CDC_PID" \
      --log-error="$MYSQL_CDC_LOG" --user=root \
      --server-id=1 --log-bin=mysql-bin --binlog-format=ROW --binlog-row-image=FULL \
      --local-infile=1 --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
      --ssl-ca="$MYSQL_CDC_TLS/ca.pem" --ssl-cert="$MYSQL_CDC_TLS/server.pem" \
      --ssl-key="$MYSQL_CDC_TLS/server-key.pem" \
      </dev/null >>"$MYSQL_CDC_LOG" 2>&1 9>&- &
    local ok=
    for _ in $(seq 1 60); do
      if mysql_cdc_ready; then ok=1; break; fi
      sleep 1
    done
    [[ -n "$ok" ]] || { log "mysql-cdc did not come up, see $MYSQL_CDC_LOG"; return 1; }
    log "mysql-cdc is up on 127.0.0.1:$MYSQL_CDC_PORT"
  fi
  mariadb --no-defaults -h 127.0.0.1 -P "$MYSQL_CDC_PORT" -uroot -e "
    create database if not exists test;
    create user if not exists 'root'@'127.0.0.1' identified by '';
    grant all privileges on *.* to 'root'@'127.0.0.1' with grant option;
    alter user 'root'@'localhost' identified by '';
    grant all privileges on *.* to 'root'@'localhost' with grant option;
    create user if not exists 'x509'@'127.0.0.1' require x509;
    grant all privileges on *.* to 'x509'@'127.0.0.1';"
}

down_mysql_cdc() {
  lock mysql-cdc
  if mysql_cdc_ready; then
    mariadb-admin --no-defaults -h 127.0.0.1 -P "$MYSQL_CDC_PORT" -uroot shutdown >/dev/null 2>&1 || true
  fi
  for _ in $(seq 1 30); do port_open "$MYSQL_CDC_PORT" || break; sleep 1; done
}

case "${1:-}" in
  up)
    shift
    for name in "$@"; do "up_${name//-/_}"; done
    ;;
  down)
    shift
    for name in "$@"; do "down_${name//-/_}"; done
    ;;
  env)
    echo "FDI_RABBITMQ=127.0.0.1:5672"
    echo "FDI_REDIS=127.0.0.1:6379"
    echo "FDI_KAFKA=127.0.0.1:$KAFKA_PORT"
    echo "FDI_PG_CDC=postgres://postgres@127.0.0.1:$PG_CDC_PORT/test"
    echo "FDI_MYSQL_CDC=mysql://root@127.0.0.1:$MYSQL_CDC_PORT/test"
    echo "FDI_MYSQL_CDC_TLS=$MYSQL_CDC_TLS"
    ;;
  *)
    echo "usage: $0 up|down NAME... | env   (names: rabbitmq redis kafka pg-cdc mysql-cdc)" >&2
    exit 2
    ;;
esac
