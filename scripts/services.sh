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
set -euo pipefail

STATE=${FDI_SERVICES_DIR:-/var/tmp/fdi-services}
KAFKA_PORT=9092
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
    # tansu resolves a sqlite:// path against its working directory.
    (cd "$STATE" && nohup "$bin" broker \
      --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
      --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
      --storage-engine "sqlite://tansu.db" \
      >"$STATE/tansu.log" 2>&1 & echo $! >"$STATE/tansu.pid")
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

case "${1:-}" in
  up)
    shift
    for name in "$@"; do "up_$name"; done
    ;;
  down)
    shift
    for name in "$@"; do "down_$name"; done
    ;;
  env)
    echo "FDI_RABBITMQ=127.0.0.1:5672"
    echo "FDI_REDIS=127.0.0.1:6379"
    echo "FDI_KAFKA=127.0.0.1:$KAFKA_PORT"
    ;;
  *)
    echo "usage: $0 up|down NAME... | env   (names: rabbitmq redis kafka)" >&2
    exit 2
    ;;
esac
