#!/bin/bash
# syscalls.sh - system calls per request: ferry next to nginx as a reverse proxy, on loopback.
#
# For each case, runs wrk through each subject for DUR seconds with strace -c attached to the
# subject's serving processes (ferry's children with all their threads, nginx's workers) and
# prints the calls per request by name. strace slows the subject down, so req/s here mean
# nothing; the counts per request are what this is for: each read, write or epoll_ctl is a
# trip through the kernel, and on loopback they are most of a proxy's cost.
#
# usage: bench/syscalls.sh [PATH_TO_FERRY]
#   needs  wrk, nginx, strace
# env:  CASES="1k:keepalive 1k:close 64k:keepalive"  DUR=3  CONNS=64
#       PROCS=1 THREADS=1 MULTIPLEXER=auto  OUT=/tmp/ferry-syscalls.XXXXXX
# Loopback only, ports chosen at run time, every run under timeout(1); stops what it started,
# by pid.
set -u
export LC_ALL=C

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
FERRY=${1:-${FERRY:-}}
if [ -z "$FERRY" ]; then
	if [ -x "$HERE/../src/ferry" ]; then FERRY=$HERE/../src/ferry; else FERRY=$(command -v ferry || true); fi
fi
CASES=${CASES:-1k:keepalive 1k:close 64k:keepalive}
DUR=${DUR:-3}
CONNS=${CONNS:-64}
OUT=${OUT:-$(mktemp -d /tmp/ferry-syscalls.XXXXXX)}

die() { echo "syscalls.sh: $*" >&2; exit 1; }
for t in wrk nginx strace; do command -v $t > /dev/null || die "$t is needed"; done
[ -n "$FERRY" ] && [ -x "$FERRY" ] || die "no ferry binary: give its path as the first argument"
mkdir -p "$OUT/www" "$OUT/logs" || exit 1
chmod 755 "$OUT" "$OUT/www"
ulimit -n "$(ulimit -Hn)" 2> /dev/null

STARTED=()
trap cleanup EXIT
trap 'exit 130' INT TERM

head -c 1024 /dev/urandom > "$OUT/www/1k"
head -c 65536 /dev/urandom > "$OUT/www/64k"
alloc_port P_ORIGIN
alloc_port P_NGX
alloc_port P_FERRY
cat > "$OUT/origin.conf" <<C
worker_processes 1; daemon off; pid $OUT/origin.pid; error_log $OUT/logs/origin.err;
events { worker_connections 20000; }
http { access_log off; keepalive_requests 1000000; sendfile on;
  server { listen 127.0.0.1:$P_ORIGIN backlog=4096; root $OUT/www; } }
C
cat > "$OUT/ngxproxy.conf" <<C
worker_processes 1; daemon off; pid $OUT/ngxproxy.pid; error_log $OUT/logs/ngxproxy.err;
events { worker_connections 20000; }
http { access_log off; keepalive_requests 1000000;
  upstream o { server 127.0.0.1:$P_ORIGIN; keepalive 64; }
  server { listen 127.0.0.1:$P_NGX backlog=4096;
    location / { proxy_pass http://o; proxy_http_version 1.1; proxy_set_header Connection "";
                 proxy_buffers 16 16k; proxy_buffer_size 16k; } } }
C
cat > "$OUT/ferry.ini" <<C
[server]
listen = 127.0.0.1:$P_FERRY
processes = ${PROCS:-1}
threads = ${THREADS:-1}
multiplexer = ${MULTIPLEXER:-auto}
max_connections = 20000
[access]
allow = 127.0.0.0/8
block_destinations =
[log]
access_log = off
C
nginx -c "$OUT/origin.conf" > "$OUT/logs/origin.out" 2>&1 &
STARTED+=($!)
wait_port $P_ORIGIN 10 $! || die "the origin did not start"
nginx -c "$OUT/ngxproxy.conf" > "$OUT/logs/ngxproxy.out" 2>&1 &
NGX=$!
STARTED+=($NGX)
wait_port $P_NGX 10 $NGX || die "nginx-rp did not start"
"$FERRY" -f -c "$OUT/ferry.ini" > "$OUT/logs/ferry.out" 2>&1 &
FER=$!
STARTED+=($FER)
wait_port $P_FERRY 10 $FER || die "ferry did not start (see $OUT/logs/ferry.out)"

for m in keepalive close; do
	{ echo "wrk.path = \"http://127.0.0.1:$P_ORIGIN/\" .. (os.getenv(\"OBJ\") or \"1k\")"
	  echo "wrk.headers[\"Host\"] = \"127.0.0.1:$P_ORIGIN\""
	  [ $m = close ] && echo 'wrk.headers["Connection"] = "close"'; } > "$OUT/$m.lua"
done

# count SUBJECT PORT MASTER_PID OBJ MODE
count() {
	local s=$1 port=$2 obj=$4 mode=$5 args="" p out reqs sp
	for p in $(ps -o pid= --ppid "$3"); do args="$args -p $p"; done
	OBJ=$obj timeout $((DUR + 30)) wrk -t1 -c"$CONNS" -d1s -s "$OUT/$mode.lua" "http://127.0.0.1:$port/" > /dev/null 2>&1
	timeout $((DUR + 60)) strace -f -c -o "$OUT/strace.$s.$obj.$mode" $args 2> /dev/null &
	sp=$!
	sleep 1
	out=$(OBJ=$obj timeout $((DUR + 30)) wrk -t1 -c"$CONNS" -d"$DUR"s -s "$OUT/$mode.lua" "http://127.0.0.1:$port/" 2>&1)
	kill -INT $sp 2> /dev/null
	wait $sp 2> /dev/null
	reqs=$(echo "$out" | awk '/requests in/{print $1}')
	if [ "${reqs:-0}" = 0 ]; then
		printf "%-14s %-9s no requests\n" "$obj $mode" "$s"
		return
	fi
	# strace -c rows: % time, seconds, usecs/call, calls, [errors,] syscall
	printf "%-14s %-9s %6.2f per request:%s\n" "$obj $mode" "$s" \
		"$(awk -v n="$reqs" '$NF == "total" {print $4 / n}' "$OUT/strace.$s.$obj.$mode")" \
		"$(awk -v n="$reqs" '$1 ~ /^[0-9.]+$/ && $NF != "total" && $4 / n >= 0.05 {printf "%.2f %s\n", $4 / n, $NF}' \
			"$OUT/strace.$s.$obj.$mode" | sort -rn | awk '{printf " %s %s", $2, $1}')"
}

echo "system calls per request, wrk -t1 -c$CONNS -d${DUR}s under strace -c -f (results in $OUT)"
for c in $CASES; do
	obj=${c%%:*} mode=${c#*:}
	count nginx-rp $P_NGX $NGX "$obj" "$mode"
	count ferry $P_FERRY $FER "$obj" "$mode"
done
