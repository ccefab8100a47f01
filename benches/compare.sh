#!/usr/bin/env bash
# Side-by-side comparison of mqgate, Mosquitto and RabbitMQ (issue 6).
#
#   bash benches/compare.sh                 # the full run: 3 repetitions, about 25 minutes
#   bash benches/compare.sh --quick         # smoke test: 1 repetition, short runs
#   bash benches/compare.sh --only mqtt-fanin-q1,mqtt-latency-q0 --reps 5
#
# What it does, in order:
#   1. installs mosquitto and rabbitmq-server from Debian when absent, and a Python venv
#      (.venv-bench) with matplotlib for the report;
#   2. builds mqgate and the load generator (mqgate-bench) in release mode;
#   3. raises the open-file limit (10,000 idle connections need as many descriptors);
#   4. starts the three brokers on ports of their own (see the PORTS below, each overridable by
#      the environment variable of the same name), each checked to be listening;
#   5. runs `mqgate-bench selfcheck` (QoS 0 and 1) to record the generator's own ceiling;
#   6. runs every scenario against every broker that speaks it, interleaved: for each
#      repetition, for each scenario, for each broker (the broker order rotates per
#      repetition), one run writing target/bench-results/<UTC time>/<scenario>__<broker>__<rep>.json;
#   7. stops the brokers (also on error or Ctrl-C), and writes docs/BENCHMARKS.md's
#      comparison section and docs/bench/*.png with benches/report.py.
#
# Options: --quick, --reps N, --only SCENARIO[,SCENARIO...], --no-build (use the binaries in
# target/release as they are), --no-report, --list (print the scenarios and exit), --help.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# ---------------------------------------------------------------------------------------------
# Ports: none of them the protocols' usual ones, so an mqgate, Mosquitto or RabbitMQ already
# running here on its defaults is left alone, and all below Linux's ephemeral range (32768 and
# up): a port in it may be held at any time by one of the generator's own client sockets, which
# RabbitMQ, for one, refuses as its distribution port.
MQGATE_MQTT_PORT="${MQGATE_MQTT_PORT:-21883}"
MQGATE_STOMP_PORT="${MQGATE_STOMP_PORT:-26613}"
MQGATE_AMQP_PORT="${MQGATE_AMQP_PORT:-25673}"
MOSQUITTO_PORT="${MOSQUITTO_PORT:-31883}"
RABBIT_AMQP_PORT="${RABBIT_AMQP_PORT:-30672}"
RABBIT_MQTT_PORT="${RABBIT_MQTT_PORT:-31884}"
RABBIT_STOMP_PORT="${RABBIT_STOMP_PORT:-30613}"
RABBIT_DIST_PORT="${RABBIT_DIST_PORT:-30674}"
RABBIT_EPMD_PORT="${RABBIT_EPMD_PORT:-30369}"
RABBIT_NODENAME="${RABBIT_NODENAME:-mqgatebench@localhost}"

BENCH="$ROOT/target/release/mqgate-bench"
MQGATE_BIN="$ROOT/target/release/mqgate"
VENV="$ROOT/.venv-bench"

# ---------------------------------------------------------------------------------------------
# Scenarios, one line each, fields separated by ';':
#   name; protocol (mqtt, amqp, stomp, cross); brokers; mqgate-bench arguments (full run);
#   arguments (--quick); --timeout-s; estimated seconds of one repetition across all its
#   brokers (full; quick); login (anon: MQTT anonymous, --user ""; guest: guest/guest).
# Every MQTT run logs in anonymously (mqgate's password logins cost an argon2 check each);
# STOMP and AMQP log in as guest everywhere. `cross` and its baseline use guest for all their
# clients, as the generator has one login per run and AMQP has no anonymous login.
# Unthrottled QoS 0 runs send a fixed count: at QoS 0 a broker without backpressure takes in
# far more than it delivers in a fixed time (RabbitMQ: 30 s of draining after 2 s of
# publishing), so a duration would not bound the run. QoS 1 runs are paced by their
# confirmation windows and publish for a fixed time.
SCENARIOS=(
  "mqtt-fanin-q0;mqtt;mqgate,mosquitto,rabbitmq;fan-in --qos 0 --publishers 4 --messages 60000;fan-in --qos 0 --publishers 4 --messages 15000;120;33;15;anon"
  "mqtt-fanin-q1;mqtt;mqgate,mosquitto,rabbitmq;fan-in --qos 1 --publishers 4 --duration-s 5;fan-in --qos 1 --publishers 4 --duration-s 2;70;25;14;anon"
  "mqtt-fanout;mqtt;mqgate,mosquitto,rabbitmq;fan-out --qos 1 --subscribers 100 --messages 3000;fan-out --qos 1 --subscribers 100 --messages 1000;120;36;15;anon"
  "mqtt-latency-q0;mqtt;mqgate,mosquitto,rabbitmq;latency --qos 0 --rate 1000 --duration-s 10;latency --qos 0 --rate 1000 --duration-s 3;70;35;14;anon"
  "mqtt-latency-q1;mqtt;mqgate,mosquitto,rabbitmq;latency --qos 1 --rate 1000 --duration-s 10;latency --qos 1 --rate 1000 --duration-s 3;70;35;14;anon"
  "mqtt-pairs;mqtt;mqgate,mosquitto,rabbitmq;pairs --publishers 1000 --rate 10 --duration-s 10;pairs --publishers 200 --rate 10 --duration-s 3;120;50;14;anon"
  "mqtt-idle;mqtt;mqgate,mosquitto,rabbitmq;idle --connections 10000 --duration-s 2;idle --connections 1000 --duration-s 1;240;80;30;anon"
  "amqp-fanin-q0;amqp;mqgate,rabbitmq;fan-in --qos 0 --publishers 4 --messages 60000;fan-in --qos 0 --publishers 4 --messages 15000;120;14;6;guest"
  "amqp-fanin-q1;amqp;mqgate,rabbitmq;fan-in --qos 1 --publishers 4 --duration-s 5;fan-in --qos 1 --publishers 4 --duration-s 2;70;14;6;guest"
  "stomp-fanin-q0;stomp;mqgate,rabbitmq;fan-in --qos 0 --publishers 4 --messages 60000;fan-in --qos 0 --publishers 4 --messages 15000;120;21;8;guest"
  "stomp-fanin-q1;stomp;mqgate,rabbitmq;fan-in --qos 1 --publishers 4 --duration-s 5;fan-in --qos 1 --publishers 4 --duration-s 2;70;14;6;guest"
  "amqp-latency-q0;amqp;mqgate,rabbitmq;latency --qos 0 --rate 1000 --duration-s 10;latency --qos 0 --rate 1000 --duration-s 3;70;23;8;guest"
  "stomp-latency-q0;stomp;mqgate,rabbitmq;latency --qos 0 --rate 1000 --duration-s 10;latency --qos 0 --rate 1000 --duration-s 3;70;23;8;guest"
  "cross;cross;mqgate;cross --qos 1 --publishers 1 --subscribers 1 --messages 200000;cross --qos 1 --publishers 1 --subscribers 1 --messages 30000;90;5;2;guest"
  "cross-baseline;mqtt;mqgate;fan-out --qos 1 --publishers 1 --subscribers 2 --messages 200000;fan-out --qos 1 --publishers 1 --subscribers 2 --messages 30000;90;4;2;guest"
)

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; }

QUICK=0
REPS=""
ONLY=""
BUILD=1
REPORT=1
LIST=0
ARGS_TEXT="$*"
while (($#)); do
  case "$1" in
    --quick) QUICK=1 ;;
    --reps) REPS="${2:?--reps needs a number}"; shift ;;
    --reps=*) REPS="${1#*=}" ;;
    --only) ONLY="${2:?--only needs scenario names}"; shift ;;
    --only=*) ONLY="${1#*=}" ;;
    --no-build) BUILD=0 ;;
    --no-report) REPORT=0 ;;
    --list) LIST=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "compare.sh: unknown option $1 (see --help)" >&2; exit 64 ;;
  esac
  shift
done
if [[ -z "$REPS" ]]; then
  if ((QUICK)); then REPS=1; else REPS=3; fi
fi
[[ "$REPS" =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: --reps wants a positive number" >&2; exit 64; }

field() { # field LINE INDEX
  local IFS=';'
  local -a parts
  read -r -a parts <<<"$1"
  printf '%s' "${parts[$2]}"
}

# The selected scenarios.
SELECTED=()
declare -A KNOWN=()
for line in "${SCENARIOS[@]}"; do KNOWN[$(field "$line" 0)]=1; done
if [[ -n "$ONLY" ]]; then
  IFS=',' read -r -a wanted <<<"$ONLY"
  for name in "${wanted[@]}"; do
    [[ -n "${KNOWN[$name]:-}" ]] || {
      echo "compare.sh: no scenario '$name'; known: ${!KNOWN[*]}" >&2
      exit 64
    }
  done
  for line in "${SCENARIOS[@]}"; do
    for name in "${wanted[@]}"; do
      [[ "$(field "$line" 0)" == "$name" ]] && SELECTED+=("$line")
    done
  done
else
  SELECTED=("${SCENARIOS[@]}")
fi

if ((LIST)); then
  for line in "${SELECTED[@]}"; do
    printf '%-16s %-6s %-28s %s\n' "$(field "$line" 0)" "$(field "$line" 1)" \
      "$(field "$line" 2)" "$(field "$line" $((3 + QUICK)))"
  done
  exit 0
fi

log() { printf '[compare %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Estimated time: runs (restarts before idle runs included), the selfcheck, brokers' start.
estimate=0
for line in "${SELECTED[@]}"; do
  estimate=$((estimate + REPS * $(field "$line" $((6 + QUICK)))))
done
estimate=$((estimate + 30 + (QUICK ? 8 : 15)))
log "$(( ${#SELECTED[@]} )) scenarios x $REPS repetition(s); estimated $((estimate / 60)) min $((estimate % 60)) s once built"

# ---------------------------------------------------------------------------------------------
# 1. Installs.
SUDO=""
if [[ "$(id -u)" != 0 ]]; then SUDO="sudo"; fi
missing=()
command -v mosquitto >/dev/null 2>&1 || [[ -x /usr/sbin/mosquitto ]] || missing+=(mosquitto)
[[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] || missing+=(rabbitmq-server)
SYS_PYTHON="$(command -v /usr/bin/python3 || command -v python3 || true)"
[[ -n "$SYS_PYTHON" ]] || missing+=(python3)
if [[ -n "$SYS_PYTHON" ]] && ! "$SYS_PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  missing+=(python3-venv)
fi
if ((${#missing[@]})); then
  log "installing ${missing[*]} from Debian"
  $SUDO apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
  SYS_PYTHON="$(command -v /usr/bin/python3 || command -v python3)"
fi
MOSQUITTO_BIN="$(command -v mosquitto || echo /usr/sbin/mosquitto)"
RABBIT_SERVER=/usr/lib/rabbitmq/bin/rabbitmq-server

if ((REPORT)); then
  if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating $VENV"
    "$SYS_PYTHON" -m venv "$VENV"
  fi
  if ! "$VENV/bin/python" -c 'import matplotlib' >/dev/null 2>&1; then
    log "installing matplotlib into $VENV"
    "$VENV/bin/python" -m pip install -q matplotlib
  fi
fi

# 2. Build.
if ((BUILD)); then
  log "cargo build --release -p mqgate -p mqgate-bench"
  cargo build --release -p mqgate -p mqgate-bench
fi
[[ -x "$BENCH" && -x "$MQGATE_BIN" ]] || die "no $BENCH or $MQGATE_BIN: build them (drop --no-build)"

# 3. Open files: 10,000 idle connections need as many descriptors in the generator and in the
# broker (both inherit this limit).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE="$(ulimit -n)"
log "open-file limit $NOFILE"

# ---------------------------------------------------------------------------------------------
# Results.
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RESULTS="$ROOT/target/bench-results/$STAMP"
mkdir -p "$RESULTS/logs"
WORK="$(mktemp -d /tmp/mqgate-compare.XXXXXX)"
log "results in ${RESULTS#"$ROOT"/}, broker state in $WORK"

listening() { # listening PORT: true when something listens on 127.0.0.1:PORT
  [[ -n "$(ss -ltnH "sport = :$1" 2>/dev/null)" ]]
}
listener_pid() { # listener_pid PORT: the pid of the process listening on PORT
  ss -ltnpH "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2
}
wait_ports() { # wait_ports SECONDS PID PORT...: all listening, or fail (also when PID died)
  local seconds=$1 pid=$2
  shift 2
  local deadline=$((SECONDS + seconds)) port ready
  while ((SECONDS < deadline)); do
    kill -0 "$pid" 2>/dev/null || return 1
    ready=1
    for port in "$@"; do listening "$port" || ready=0; done
    ((ready)) && return 0
    sleep 0.2
  done
  return 1
}
stop_pid() { # stop_pid PID: TERM, up to 20 s, then KILL
  local pid=$1 i
  [[ -n "$pid" ]] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.2
  done
  kill -KILL "$pid" 2>/dev/null || true
}

for port in "$MQGATE_MQTT_PORT" "$MQGATE_STOMP_PORT" "$MQGATE_AMQP_PORT" "$MOSQUITTO_PORT" \
  "$RABBIT_AMQP_PORT" "$RABBIT_MQTT_PORT" "$RABBIT_STOMP_PORT" "$RABBIT_DIST_PORT" \
  "$RABBIT_EPMD_PORT"; do
  listening "$port" && die "port $port is taken: set the variable named in benches/compare.sh's PORTS to another"
done

declare -A PID=([mqgate]="" [mosquitto]="" [rabbitmq]="")
EPMD_PID=""

start_mqgate() {
  MQGATE_LISTENERS__MQTT__PLAIN="127.0.0.1:$MQGATE_MQTT_PORT" \
  MQGATE_LISTENERS__STOMP__PLAIN="127.0.0.1:$MQGATE_STOMP_PORT" \
  MQGATE_LISTENERS__AMQP__PLAIN="127.0.0.1:$MQGATE_AMQP_PORT" \
  MQGATE_LIMITS__MAX_CONNECTIONS=20000 \
  MQGATE_LOG__LEVEL=warn \
  RUST_LOG= \
    "$MQGATE_BIN" --config "$ROOT/config/mqgate.yaml" >>"$WORK/mqgate.log" 2>&1 </dev/null &
  PID[mqgate]=$!
  wait_ports 30 "${PID[mqgate]}" "$MQGATE_MQTT_PORT" "$MQGATE_STOMP_PORT" "$MQGATE_AMQP_PORT" ||
    { tail -20 "$WORK/mqgate.log" >&2; log "mqgate did not start"; return 1; }
}

start_mosquitto() {
  # Mosquitto's defaults but for the listener, anonymous logins, and TCP_NODELAY (its default
  # leaves Nagle on, which alone puts its p99.9 near 20 ms; mqgate and the generator set it).
  cat >"$WORK/mosquitto.conf" <<EOF
listener $MOSQUITTO_PORT 127.0.0.1
allow_anonymous true
set_tcp_nodelay true
log_dest stderr
log_type error
log_type warning
EOF
  "$MOSQUITTO_BIN" -c "$WORK/mosquitto.conf" >>"$WORK/mosquitto.log" 2>&1 </dev/null &
  PID[mosquitto]=$!
  wait_ports 30 "${PID[mosquitto]}" "$MOSQUITTO_PORT" ||
    { tail -20 "$WORK/mosquitto.log" >&2; log "mosquitto did not start"; return 1; }
}

start_rabbitmq() {
  local dir="$WORK/rabbitmq"
  rm -rf "$dir"
  mkdir -p "$dir/mnesia" "$dir/log" "$dir/home"
  echo "[rabbitmq_mqtt,rabbitmq_stomp]." >"$dir/enabled_plugins"
  : >"$dir/rabbitmq-env.conf"
  cat >"$dir/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$RABBIT_AMQP_PORT
mqtt.listeners.tcp.default = 127.0.0.1:$RABBIT_MQTT_PORT
stomp.listeners.tcp.default = 127.0.0.1:$RABBIT_STOMP_PORT
mqtt.allow_anonymous = true
mqtt.default_user = guest
mqtt.default_pass = guest
stomp.default_user = guest
stomp.default_pass = guest
log.console = false
log.file.level = warning
EOF
  # Run as root with a HOME of its own (the Erlang cookie goes there); RUNNING_UNDER_SYSTEMD
  # makes the start script exec the VM in place, so the pid is beam.smp's.
  (
    cd "$dir"
    exec env HOME="$dir/home" \
      RABBITMQ_NODENAME="$RABBIT_NODENAME" \
      RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
      RABBITMQ_DIST_PORT="$RABBIT_DIST_PORT" \
      ERL_EPMD_PORT="$RABBIT_EPMD_PORT" \
      ERL_EPMD_ADDRESS=127.0.0.1 \
      RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
      RABBITMQ_MNESIA_BASE="$dir/mnesia" \
      RABBITMQ_LOG_BASE="$dir/log" \
      RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
      RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" \
      RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config" \
      RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf" \
      RABBITMQ_PID_FILE="$dir/rabbitmq.pid" \
      RUNNING_UNDER_SYSTEMD=true \
      "$RABBIT_SERVER"
  ) >>"$WORK/rabbitmq.log" 2>&1 </dev/null &
  local started=$!
  wait_ports 120 "$started" "$RABBIT_AMQP_PORT" "$RABBIT_MQTT_PORT" "$RABBIT_STOMP_PORT" ||
    {
      grep -m3 -E 'error|Error|failed' "$WORK/rabbitmq.log" >&2 || tail -10 "$WORK/rabbitmq.log" >&2
      log "rabbitmq did not start (more in $WORK/rabbitmq.log)"
      stop_pid "$started"
      stop_epmd
      return 1
    }
  PID[rabbitmq]="$(listener_pid "$RABBIT_AMQP_PORT")"
  [[ -n "${PID[rabbitmq]}" ]] || PID[rabbitmq]=$started
  EPMD_PID="$(listener_pid "$RABBIT_EPMD_PORT")"
}

stop_epmd() {
  # The epmd on RABBIT_EPMD_PORT (free when this script started) is the one its RabbitMQ
  # started.
  local pid="${EPMD_PID:-$(listener_pid "$RABBIT_EPMD_PORT")}"
  if [[ -n "$pid" && "$(cat "/proc/$pid/comm" 2>/dev/null)" == epmd ]]; then
    stop_pid "$pid"
  fi
  EPMD_PID=""
}

stop_broker() {
  local broker=$1
  stop_pid "${PID[$broker]}"
  PID[$broker]=""
  if [[ "$broker" == rabbitmq ]]; then
    stop_epmd
  fi
}

cpu_ticks() { # cpu_ticks PID: utime + stime of the process, in clock ticks
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || { echo 0; return; }
  stat="${stat##*) }"
  read -r -a fields <<<"$stat"
  echo $((fields[11] + fields[12]))
}
TICKS="$(getconf CLK_TCK 2>/dev/null || echo 100)"
settle() { # settle PID: wait (up to 90 s) until the broker uses under 10% of a core
  local pid=$1 start=$SECONDS before after
  while ((SECONDS - start < 90)); do
    before="$(cpu_ticks "$pid")"
    sleep 0.5
    after="$(cpu_ticks "$pid")"
    if (((after - before) * 20 <= TICKS)); then
      ((SECONDS - start >= 2)) && log "  waited $((SECONDS - start)) s for the broker to go quiet"
      return 0
    fi
  done
  log "  the broker is still busy after 90 s; running anyway"
}

# start_broker NAME: true when it is up; a broker that cannot start is left out of the
# comparison (its runs are skipped and listed in meta.json's "unavailable").
declare -A UNAVAILABLE=()
start_broker() {
  if "start_$1"; then
    log "$1 up (pid ${PID[$1]})"
  else
    UNAVAILABLE[$1]=1
    PID[$1]=""
    log "$1 left out of this comparison"
    return 1
  fi
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  for broker in rabbitmq mosquitto mqgate; do
    [[ -n "${PID[$broker]:-}" ]] && stop_broker "$broker"
  done
  stop_epmd
  if [[ -n "${WORK:-}" && -d "$WORK" ]]; then
    # Keep the brokers' logs next to the results, briefly.
    for name in mqgate mosquitto rabbitmq; do
      [[ -s "$WORK/$name.log" ]] && tail -200 "$WORK/$name.log" >"$RESULTS/logs/broker-$name.log"
    done
    rm -rf "$WORK"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Which brokers the selection needs.
declare -A NEEDED=()
for line in "${SELECTED[@]}"; do
  IFS=',' read -r -a brokers <<<"$(field "$line" 2)"
  for broker in "${brokers[@]}"; do NEEDED[$broker]=1; done
done

# ---------------------------------------------------------------------------------------------
# Machine and versions.
json_str() { "$SYS_PYTHON" -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"; }
MQGATE_VERSION="$(git -C "$ROOT" describe --always --dirty --tags 2>/dev/null || echo unknown)"
MOSQUITTO_VERSION="$("$MOSQUITTO_BIN" -h 2>/dev/null | head -1 || true)"
RABBIT_VERSION="$(dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null || echo unknown)"
ERLANG_VERSION="$(dpkg-query -W -f '${Version}' erlang-base 2>/dev/null || echo unknown)"
CPU_MODEL="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || echo unknown)"
MEM_KB="$(grep -m1 MemTotal /proc/meminfo | awk '{print $2}')"
COMMAND="bash benches/compare.sh${ARGS_TEXT:+ $ARGS_TEXT}"
cat >"$RESULTS/meta.json" <<EOF
{
  "date": $(json_str "$(date -u +%Y-%m-%dT%H:%M:%SZ)"),
  "command": $(json_str "$COMMAND"),
  "quick": $( ((QUICK)) && echo true || echo false ),
  "reps": $REPS,
  "scenarios": $(json_str "$(for l in "${SELECTED[@]}"; do field "$l" 0; printf ' '; done)"),
  "nproc": $(nproc),
  "cpu_model": $(json_str "$CPU_MODEL"),
  "mem_total_kb": ${MEM_KB:-0},
  "kernel": $(json_str "$(uname -sr)"),
  "open_files": $NOFILE,
  "mqgate_version": $(json_str "$MQGATE_VERSION"),
  "mosquitto_version": $(json_str "$MOSQUITTO_VERSION"),
  "rabbitmq_version": $(json_str "$RABBIT_VERSION"),
  "erlang_version": $(json_str "$ERLANG_VERSION"),
  "mosquitto_config": "listener on 127.0.0.1, allow_anonymous true, set_tcp_nodelay true, otherwise defaults",
  "rabbitmq_config": "plugins rabbitmq_mqtt and rabbitmq_stomp (no management), anonymous MQTT and STOMP as guest, otherwise defaults",
  "mqgate_config": "config/mqgate.yaml with listeners on 127.0.0.1, limits.max_connections 20000, log level warn",
  "ports": {"mqgate": [$MQGATE_MQTT_PORT, $MQGATE_STOMP_PORT, $MQGATE_AMQP_PORT], "mosquitto": [$MOSQUITTO_PORT], "rabbitmq": [$RABBIT_MQTT_PORT, $RABBIT_STOMP_PORT, $RABBIT_AMQP_PORT]}
}
EOF

# ---------------------------------------------------------------------------------------------
# 5. The generator's ceiling, before any broker runs (nothing else busy).
for qos in 0 1; do
  messages=200000
  ((QUICK)) && messages=50000
  log "selfcheck qos $qos ($messages messages x 4 publishers)"
  timeout -k 10 150 "$BENCH" selfcheck --qos "$qos" --messages "$messages" --timeout-s 120 \
    --json "$RESULTS/selfcheck__generator__q$qos.json" >"$RESULTS/logs/selfcheck__q$qos.log" 2>&1 ||
    log "selfcheck qos $qos exited $? (see logs/selfcheck__q$qos.log)"
  grep -E 'publish:|receive:' "$RESULTS/logs/selfcheck__q$qos.log" | sed 's/^ */    /' >&2 || true
done

# 4. Brokers.
for broker in mqgate mosquitto rabbitmq; do
  if [[ -n "${NEEDED[$broker]:-}" ]]; then start_broker "$broker" || true; fi
done
((${#UNAVAILABLE[@]} < ${#NEEDED[@]})) || die "no broker could start"

target_of() { # target_of BROKER PROTOCOL
  case "$1:$2" in
    mqgate:mqtt|mqgate:cross) echo "mqtt://127.0.0.1:$MQGATE_MQTT_PORT" ;;
    mqgate:stomp) echo "stomp://127.0.0.1:$MQGATE_STOMP_PORT" ;;
    mqgate:amqp) echo "amqp://127.0.0.1:$MQGATE_AMQP_PORT" ;;
    mosquitto:mqtt) echo "mqtt://127.0.0.1:$MOSQUITTO_PORT" ;;
    rabbitmq:mqtt|rabbitmq:cross) echo "mqtt://127.0.0.1:$RABBIT_MQTT_PORT" ;;
    rabbitmq:stomp) echo "stomp://127.0.0.1:$RABBIT_STOMP_PORT" ;;
    rabbitmq:amqp) echo "amqp://127.0.0.1:$RABBIT_AMQP_PORT" ;;
    *) return 1 ;;
  esac
}
out_targets_of() { # out_targets_of BROKER: cross's subscribers
  case "$1" in
    mqgate) echo "--out-target stomp://127.0.0.1:$MQGATE_STOMP_PORT --out-target amqp://127.0.0.1:$MQGATE_AMQP_PORT" ;;
    rabbitmq) echo "--out-target stomp://127.0.0.1:$RABBIT_STOMP_PORT --out-target amqp://127.0.0.1:$RABBIT_AMQP_PORT" ;;
  esac
}

total_runs=0
for line in "${SELECTED[@]}"; do
  IFS=',' read -r -a brokers <<<"$(field "$line" 2)"
  total_runs=$((total_runs + REPS * ${#brokers[@]}))
done

# 6. The runs, interleaved.
run_index=0
failures=0
started_at=$SECONDS
for ((rep = 1; rep <= REPS; rep++)); do
  for line in "${SELECTED[@]}"; do
    name="$(field "$line" 0)"
    protocol="$(field "$line" 1)"
    IFS=',' read -r -a brokers <<<"$(field "$line" 2)"
    read -r -a args <<<"$(field "$line" $((3 + QUICK)))"
    timeout_s="$(field "$line" 5)"
    login="$(field "$line" 8)"
    if [[ "$login" == anon ]]; then creds=(--user "" --password ""); else creds=(--user guest --password guest); fi
    # Rotate the broker order per repetition, so no broker always runs first or last.
    count=${#brokers[@]}
    for ((k = 0; k < count; k++)); do
      broker="${brokers[$(((k + rep - 1) % count))]}"
      run_index=$((run_index + 1))
      if [[ -n "${UNAVAILABLE[$broker]:-}" ]]; then
        log "[$run_index/$total_runs] rep $rep $name on $broker: skipped ($broker could not start)"
        continue
      fi
      if [[ "$name" == mqtt-idle ]]; then
        # Memory freed by earlier runs would be reused and hide the per-connection cost.
        stop_broker "$broker"
        start_broker "$broker" || continue
      fi
      if ! kill -0 "${PID[$broker]}" 2>/dev/null; then
        log "$broker is not running any more: restarting it"
        start_broker "$broker" || continue
      fi
      # Whatever an earlier run left the broker doing (draining a backlog, closing 10,000
      # connections) would count against this one.
      settle "${PID[$broker]}"
      target="$(target_of "$broker" "$protocol")"
      extra=()
      [[ "$protocol" == cross ]] && read -r -a extra <<<"$(out_targets_of "$broker")"
      file="${name}__${broker}__${rep}"
      log "[$run_index/$total_runs] rep $rep $name on $broker ($((SECONDS - started_at)) s in)"
      status=0
      timeout -k 10 $((timeout_s + 30)) "$BENCH" "${args[@]}" --target "$target" "${extra[@]}" \
        "${creds[@]}" --broker-pid "${PID[$broker]}" --quiet-ms 1000 --timeout-s "$timeout_s" \
        --json "$RESULTS/$file.json" >"$RESULTS/logs/$file.log" 2>&1 || status=$?
      summary="$(grep -E 'msgs/s delivered|connections:|broker RSS|latency us' "$RESULTS/logs/$file.log" | sed 's/^ */    /' || true)"
      [[ -n "$summary" ]] && printf '%s\n' "$summary" >&2
      if ((status != 0)); then
        failures=$((failures + 1))
        log "  exit $status ($( ((status == 2)) && echo 'loss, duplicates, errors or deadline' || echo 'could not run'); see logs/$file.log)"
        if [[ ! -s "$RESULTS/$file.json" ]]; then
          printf '{"scenario": %s, "failed": true, "exit": %d}\n' "$(json_str "$name")" "$status" >"$RESULTS/$file.json"
        fi
      fi
    done
  done
done
log "runs done in $((SECONDS - started_at)) s; $failures not OK"
if ((${#UNAVAILABLE[@]})); then
  "$SYS_PYTHON" - "$RESULTS/meta.json" "${!UNAVAILABLE[@]}" <<'PY'
import json, sys
path, brokers = sys.argv[1], sorted(sys.argv[2:])
meta = json.load(open(path))
meta["unavailable"] = brokers
json.dump(meta, open(path, "w"), indent=2)
PY
fi

# 7. Brokers down, then the report.
for broker in rabbitmq mosquitto mqgate; do
  [[ -n "${PID[$broker]}" ]] && stop_broker "$broker"
done
if ((REPORT)); then
  log "report: $VENV/bin/python benches/report.py ${RESULTS#"$ROOT"/}"
  "$VENV/bin/python" "$ROOT/benches/report.py" "$RESULTS"
fi
log "done: ${RESULTS#"$ROOT"/}"
