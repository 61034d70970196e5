#!/bin/bash
# run.sh - ferry side by side with the proxies installed on this machine, on loopback.
#
# One run measures, against one nginx origin, the workloads of ferry's performance targets
# (doc/performance.md): plain HTTP through the proxy with wrk (1 KiB keep-alive, 1 KiB
# Connection: close, 64 KiB keep-alive), a 1 GiB download through a CONNECT tunnel, the
# memory of N idle CONNECT tunnels, poll against epoll with N open connections, and how
# req/s changes with ferry's processes and threads. The peers are nginx and HAProxy as
# fixed reverse proxies ("nginx-rp", "haproxy-rp": the best C proxy engines, the same
# relay without the forward-proxy part) and tinyproxy, Squid and Privoxy (forward
# proxies); "direct" is wrk talking to the origin itself, the limit.
#
# The machine this runs on is usually shared and noisy: compare ratios within one run, never
# absolute numbers between runs. Each measurement is repeated ROUNDS times, interleaved, and
# the summary gives the median of the per-round ratios.
#
# usage: bench/run.sh [PATH_TO_FERRY]
#   needs  wrk, nginx (the origin), bash; python3 for the CONNECT workloads
#   peers  haproxy, tinyproxy, squid, privoxy: each is skipped with a note when missing
# env:
#   WORKLOADS="http tunnel idle multiplexer scaling"   which parts to run
#   PEERS="nginx-rp haproxy-rp tinyproxy squid privoxy"  (subset; missing ones are skipped)
#   HTTP_CASES="1k:keepalive 1k:close 64k:keepalive"   (objects 1k, 64k, 1m; keepalive|close)
#   DUR=5 (seconds per wrk run)  CONNS=64  ROUNDS=3  N=9000 (tunnels)  BIG=1g (1g|256m)
#   PROCS=1 THREADS=1 MULTIPLEXER=auto  (ferry in the side-by-side parts)
#   SCALE_CONFIGS="1x1 2x1 1x2 2x2 autox1 autoxauto"   (processes x threads)
#   OUT=/tmp/ferry-bench.XXXXXX  (configs, logs, raw results and report.txt are kept there)
#
# Everything listens on 127.0.0.1 on ports chosen at run time. Every wrk run, download and
# tunnel client runs under timeout(1). On exit (also on ^C) the script stops exactly the
# processes it started, by pid, and their children.
set -u
export LC_ALL=C

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
FERRY=${1:-${FERRY:-}}
if [ -z "$FERRY" ]; then
	if [ -x "$HERE/../src/ferry" ]; then FERRY=$HERE/../src/ferry; else FERRY=$(command -v ferry || true); fi
fi
DUR=${DUR:-5}
CONNS=${CONNS:-64}
ROUNDS=${ROUNDS:-3}
N=${N:-9000}
BIG=${BIG:-1g}
PROCS=${PROCS:-1}
THREADS=${THREADS:-1}
MULTIPLEXER=${MULTIPLEXER:-auto}
WORKLOADS=${WORKLOADS:-http tunnel idle multiplexer scaling}
PEERS=${PEERS-nginx-rp haproxy-rp tinyproxy squid privoxy}
HTTP_CASES=${HTTP_CASES:-1k:keepalive 1k:close 64k:keepalive}
SCALE_CONFIGS=${SCALE_CONFIGS:-1x1 2x1 1x2 2x2 autox1 autoxauto}
OUT=${OUT:-$(mktemp -d /tmp/ferry-bench.XXXXXX)}

mkdir -p "$OUT/www" "$OUT/logs" "$OUT/conf" || exit 1
# the origin's workers may run as nobody: they must be able to read the objects
chmod 755 "$OUT" "$OUT/www"
REPORT=$OUT/report.txt
: > "$REPORT"

say() { echo "$*" | tee -a "$REPORT"; }
note() { say "note: $*"; }
die() { echo "run.sh: $*" >&2; exit 1; }
wants() { case " $WORKLOADS " in *" $1 "*) return 0;; esac; return 1; }

have wrk || die "wrk is needed (apt-get install wrk)"
have nginx || die "nginx is needed as the origin (apt-get install nginx)"
[ -n "$FERRY" ] && [ -x "$FERRY" ] || die "no ferry binary: give its path as the first argument"
HAVE_PY=1
have python3 || { HAVE_PY=0; }

ulimit -n "$(ulimit -Hn)" 2>/dev/null
CLK_TCK=$(getconf CLK_TCK)

# ---- processes: started here, stopped here, by pid ----

declare -A PID_OF
STARTED=()

# spawn NAME CMD...: start CMD in the background, output appended to logs/NAME.out
spawn() {
	local name=$1
	shift
	"$@" >> "$OUT/logs/$name.out" 2>&1 &
	PID_OF[$name]=$!
	STARTED+=($!)
}

stop() { # stop NAME
	local pid=${PID_OF[$1]:-}
	[ -n "$pid" ] && stop_pid "$pid"
	unset "PID_OF[$1]"
}

trap cleanup EXIT
trap 'exit 130' INT TERM

# ports: alloc_port and wait_port in lib.sh

# ---- measuring a process tree ----

cpu_ms() { # user+system CPU of a process and its children, in ms
	local total=0 p t
	for p in $1 $(descendants "$1"); do
		t=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}')
		total=$((total + ${t:-0}))
	done
	echo $((total * 1000 / CLK_TCK))
}

rss_kib() { # resident memory of a process and its children
	local total=0 p r
	for p in $1 $(descendants "$1"); do
		r=$(awk '/^VmRSS/{print $2}' "/proc/$p/status" 2>/dev/null)
		total=$((total + ${r:-0}))
	done
	echo $total
}

# ---- the origin and the peers ----

head -c 1024 /dev/urandom > "$OUT/www/1k"
head -c 65536 /dev/urandom > "$OUT/www/64k"
head -c 1048576 /dev/urandom > "$OUT/www/1m"
case $BIG in 1g) truncate -s 1G "$OUT/www/1g";; 256m) truncate -s 256M "$OUT/www/256m";; *) die "BIG is 1g or 256m";; esac

alloc_port P_ORIGIN
cat > "$OUT/conf/origin.conf" <<C
worker_processes 1; daemon off; pid $OUT/origin.pid; error_log $OUT/logs/origin.err;
events { worker_connections 20000; }
http { access_log off; keepalive_requests 1000000; sendfile on;
  client_header_timeout 600s; keepalive_timeout 600s;
  server { listen 127.0.0.1:$P_ORIGIN backlog=4096; root $OUT/www; } }
C
spawn origin nginx -c "$OUT/conf/origin.conf"
wait_port $P_ORIGIN 10 ${PID_OF[origin]} || die "the nginx origin did not start (see $OUT/logs/origin.out)"

declare -A PORT
PORT[direct]=$P_ORIGIN

start_peer() {
	local p=$1 port
	alloc_port port
	case $p in
	nginx-rp)
		cat > "$OUT/conf/ngxproxy.conf" <<C
worker_processes 1; daemon off; pid $OUT/ngxproxy.pid; error_log $OUT/logs/ngxproxy.err;
events { worker_connections 20000; }
http { access_log off; keepalive_requests 1000000;
  upstream o { server 127.0.0.1:$P_ORIGIN; keepalive 64; }
  server { listen 127.0.0.1:$port backlog=4096;
    location / { proxy_pass http://o; proxy_http_version 1.1; proxy_set_header Connection "";
                 proxy_buffers 16 16k; proxy_buffer_size 16k; } } }
C
		spawn $p nginx -c "$OUT/conf/ngxproxy.conf" ;;
	haproxy-rp)
		have haproxy || { note "haproxy not installed: haproxy-rp skipped"; return 1; }
		cat > "$OUT/conf/haproxy.cfg" <<C
global
  nbthread 1
  maxconn $(( ($(ulimit -n) - 100) / 2 ))
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend f
  bind 127.0.0.1:$port
  default_backend b
backend b
  server o 127.0.0.1:$P_ORIGIN
C
		spawn $p haproxy -db -f "$OUT/conf/haproxy.cfg" ;;
	tinyproxy)
		have tinyproxy || { note "tinyproxy not installed: skipped"; return 1; }
		cat > "$OUT/conf/tinyproxy.conf" <<C
Port $port
Listen 127.0.0.1
Timeout 600
MaxClients 20000
LogLevel Critical
Allow 127.0.0.1
ConnectPort $P_ORIGIN
C
		spawn $p tinyproxy -d -c "$OUT/conf/tinyproxy.conf" ;;
	squid)
		have squid || { note "squid not installed: skipped"; return 1; }
		cat > "$OUT/conf/squid.conf" <<C
http_port 127.0.0.1:$port
acl SSL_ports port $P_ORIGIN
http_access deny CONNECT !SSL_ports
http_access allow all
cache deny all
cache_mem 8 MB
access_log none
cache_log $OUT/logs/squid.log
pid_filename $OUT/squid.pid
workers 1
max_filedescriptors 20000
coredump_dir $OUT
shutdown_lifetime 0 seconds
C
		spawn $p squid -N -f "$OUT/conf/squid.conf" ;;
	privoxy)
		have privoxy || { note "privoxy not installed: skipped"; return 1; }
		cat > "$OUT/conf/privoxy.conf" <<C
listen-address 127.0.0.1:$port
toggle 0
enable-remote-toggle 0
max-client-connections 20000
logdir $OUT/logs
keep-alive-timeout 300
connection-sharing 1
C
		spawn $p privoxy --no-daemon "$OUT/conf/privoxy.conf" ;;
	*)
		note "unknown peer $p: skipped"
		return 1 ;;
	esac
	if ! wait_port $port 20 ${PID_OF[$p]}; then
		note "$p did not start (see $OUT/logs/$p.out): skipped"
		stop $p
		return 1
	fi
	PORT[$p]=$port
}

# start_ferry NAME PROCESSES THREADS MULTIPLEXER
start_ferry() {
	local name=$1 port
	alloc_port port
	cat > "$OUT/conf/$name.ini" <<C
[server]
listen = 127.0.0.1:$port
processes = $2
threads = $3
multiplexer = $4
max_connections = 20000
[access]
allow = 127.0.0.0/8
connect_ports = $P_ORIGIN
block_destinations =
[log]
access_log = off
C
	spawn $name "$FERRY" -f -c "$OUT/conf/$name.ini"
	if ! wait_port $port 10 ${PID_OF[$name]}; then
		note "$name did not start (see $OUT/logs/$name.out)"
		stop $name
		return 1
	fi
	PORT[$name]=$port
}

# ---- clients ----

for m in keepalive close; do
	{ echo "wrk.path = \"http://127.0.0.1:$P_ORIGIN/\" .. (os.getenv(\"OBJ\") or \"1k\")"
	  echo "wrk.headers[\"Host\"] = \"127.0.0.1:$P_ORIGIN\""
	  [ $m = close ] && echo 'wrk.headers["Connection"] = "close"'; } > "$OUT/conf/$m.lua"
done

# run_wrk SUBJECT OBJ MODE DURATION: prints "requests req/s latency errors cpu_ms"
run_wrk() {
	local s=$1 pid out c0 c1 reqs rps lat errs
	pid=${PID_OF[$s]:-${PID_OF[origin]}}
	[ "$s" = direct ] && pid=${PID_OF[origin]}
	c0=$(cpu_ms "$pid")
	out=$(OBJ=$2 timeout $(($4 + 30)) wrk -t1 -c"$CONNS" -d"$4"s --timeout 5s -s "$OUT/conf/$3.lua" \
		"http://127.0.0.1:${PORT[$s]}/" 2>&1)
	c1=$(cpu_ms "$pid")
	reqs=$(echo "$out" | awk '/requests in/{print $1}')
	rps=$(echo "$out" | awk '/Requests\/sec/{print $2}')
	lat=$(echo "$out" | awk '$1 == "Latency" {print $2}')
	errs=$(echo "$out" | awk '/Non-2xx/{n += $NF} /Socket errors/{gsub(",", ""); n += $4 + $6 + $8 + $10} END {print n + 0}')
	echo "${reqs:-0} ${rps:-0} ${lat:--} ${errs:-0} $((c1 - c0))"
}

# median of the numbers on stdin (one per line; "-" lines ignored)
median() { grep -v '^-$' | sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f\n", a / b}'; }

# ---- the header ----

say "ferry benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
say "machine: $(uname -sr), $(nproc) CPUs, $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo), $(awk '/MemTotal/{printf "%.0f GiB RAM", $2 / 1048576}' /proc/meminfo)"
say "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
say "ferry: $("$FERRY" -v 2>&1 | head -1) ($FERRY), processes=$PROCS threads=$THREADS multiplexer=$MULTIPLEXER"
say "nginx: $(nginx -v 2>&1 | sed 's/.*version: //')$(have haproxy && echo ", haproxy: $(haproxy -v 2>&1 | awk 'NR==1{print $3}')")$(have tinyproxy && echo ", tinyproxy: $(tinyproxy -v 2>&1 | awk '{print $2}')")$(have squid && echo ", squid: $(squid -v 2>&1 | awk 'NR==1{print $4}')")$(have privoxy && echo ", privoxy: $(privoxy --version 2>&1 | awk '{print $3}')")"
say "wrk -t1 -c$CONNS -d${DUR}s, $ROUNDS rounds; results in $OUT"
[ "$HAVE_PY" = 1 ] || note "python3 not found: the CONNECT workloads (tunnel, idle, multiplexer) are skipped"

SUBJECTS=(direct)
for p in $PEERS; do start_peer "$p" && SUBJECTS+=("$p"); done
start_ferry ferry "$PROCS" "$THREADS" "$MULTIPLEXER" || die "ferry did not start"
SUBJECTS+=(ferry)
RP=()
for p in nginx-rp haproxy-rp; do [ -n "${PORT[$p]:-}" ] && RP+=("$p"); done
say "subjects: ${SUBJECTS[*]}"

# ---- HTTP: wrk through each subject ----

if wants http; then
	say ""
	say "== HTTP through the proxy: wrk -t1 -c$CONNS -d${DUR}s, median of $ROUNDS rounds"
	: > "$OUT/http.tsv"
	: > "$OUT/http.summary"
	for s in "${SUBJECTS[@]}"; do run_wrk "$s" 1k keepalive 1 > /dev/null; done # warm-up
	for c in $HTTP_CASES; do
		obj=${c%%:*} mode=${c#*:}
		for r in $(seq "$ROUNDS"); do
			for s in "${SUBJECTS[@]}"; do
				echo "$obj $mode $r $s $(run_wrk "$s" "$obj" "$mode" "$DUR")" >> "$OUT/http.tsv"
			done
		done
	done
	# per round: ratio to direct and to the best reverse proxy of that round; then medians
	printf "%-14s %-10s %10s %8s %11s %9s %9s %7s\n" case subject req/s latency "cpu us/req" "x direct" "x best-rp" errors | tee -a "$REPORT"
	for c in $HTTP_CASES; do
		obj=${c%%:*} mode=${c#*:}
		for s in "${SUBJECTS[@]}"; do
			rows=$(awk -v o="$obj" -v m="$mode" -v s="$s" '$1 == o && $2 == m && $4 == s' "$OUT/http.tsv")
			rps=$(echo "$rows" | awk '{print $6}' | median)
			lat=$(echo "$rows" | awk '{print ms($7)} function ms(v) {if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return "-"}' | median)
			cpu=$(echo "$rows" | awk '{print ($5 > 0 ? $9 * 1000 / $5 : "-")}' | median)
			errs=$(echo "$rows" | awk '{n += $8} END {print n + 0}')
			xd=$(for r in $(seq "$ROUNDS"); do
				awk -v o="$obj" -v m="$mode" -v r="$r" -v s="$s" '$1 == o && $2 == m && $3 == r {rps[$4] = $6}
					END {if (rps["direct"] > 0) printf "%.4f\n", rps[s] / rps["direct"]; else print "-"}' "$OUT/http.tsv"
			done | median)
			xb=-
			if [ ${#RP[@]} -gt 0 ]; then
				xb=$(for r in $(seq "$ROUNDS"); do
					awk -v o="$obj" -v m="$mode" -v r="$r" -v s="$s" -v rp="${RP[*]}" '$1 == o && $2 == m && $3 == r {rps[$4] = $6}
						END {n = split(rp, p, " "); b = 0; for (i = 1; i <= n; i++) if (rps[p[i]] > b) b = rps[p[i]];
						     if (b > 0) printf "%.4f\n", rps[s] / b; else print "-"}' "$OUT/http.tsv"
				done | median)
			fi
			printf "%-14s %-10s %10.0f %8s %11s %9s %9s %7s\n" "$obj $mode" "$s" "$rps" "$(awk -v v="$lat" 'BEGIN {if (v == "-") print "-"; else printf "%.2fms", v}')" \
				"$(awk -v v="$cpu" 'BEGIN {if (v == "-") print "-"; else printf "%.1f", v}')" \
				"$(ratio "$xd" 1)" "$(ratio "$xb" 1)" "$errs" | tee -a "$REPORT"
			echo "$obj $mode $s $rps $cpu $xd $xb $errs" >> "$OUT/http.summary"
		done
	done
	say "(cpu us/req: CPU time of the subject's processes per request; for direct, the origin's)"
fi

# ---- CONNECT tunnel: one big download, straight and through each forward proxy ----

FWD=()
for s in "${SUBJECTS[@]}"; do case $s in direct|*-rp) ;; *) FWD+=("$s");; esac; done

if wants tunnel && [ "$HAVE_PY" = 1 ]; then
	say ""
	say "== CONNECT tunnel: download $BIG from the origin, median of $ROUNDS rounds"
	: > "$OUT/tunnel.tsv"
	: > "$OUT/tunnel.summary"
	timeout 60 python3 "$HERE/download.py" $P_ORIGIN "$BIG" > /dev/null 2>&1 # warm the page cache
	for r in $(seq "$ROUNDS"); do
		for s in direct "${FWD[@]}"; do
			pid=${PID_OF[$s]:-${PID_OF[origin]}}
			[ $s = direct ] && pid=${PID_OF[origin]}
			c0=$(cpu_ms "$pid")
			if [ $s = direct ]; then
				res=$(timeout 120 python3 "$HERE/download.py" $P_ORIGIN "$BIG" 2> "$OUT/logs/dl.err")
			else
				res=$(timeout 120 python3 "$HERE/download.py" $P_ORIGIN "$BIG" "${PORT[$s]}" 2> "$OUT/logs/dl.err")
			fi
			c1=$(cpu_ms "$pid")
			[ -n "$res" ] || { res="0 - -"; note "tunnel download through $s failed: $(tail -1 "$OUT/logs/dl.err")"; }
			echo "$r $s $res $((c1 - c0))" >> "$OUT/tunnel.tsv"
		done
	done
	printf "%-10s %12s %9s %13s\n" subject MB/s "x direct" "cpu ms/GiB" | tee -a "$REPORT"
	for s in direct "${FWD[@]}"; do
		rate=$(awk -v s="$s" '$2 == s {print $5}' "$OUT/tunnel.tsv" | median)
		cpu=$(awk -v s="$s" '$2 == s && $3 > 0 {print $6 * 1073741824 / $3}' "$OUT/tunnel.tsv" | median)
		x=$(for r in $(seq "$ROUNDS"); do
			awk -v r="$r" -v s="$s" '$1 == r {v[$2] = $5} END {if (v["direct"] > 0 && v[s] != "-") printf "%.4f\n", v[s] / v["direct"]; else print "-"}' "$OUT/tunnel.tsv"
		done | median)
		printf "%-10s %12s %9s %13s\n" "$s" "$(awk -v v="$rate" 'BEGIN {if (v == "-") print "-"; else printf "%.0f", v / 1e6}')" \
			"$(ratio "$x" 1)" "$(awk -v v="$cpu" 'BEGIN {if (v == "-") print "-"; else printf "%.0f", v}')" | tee -a "$REPORT"
		echo "$s $rate $x $cpu" >> "$OUT/tunnel.summary"
	done
	say "(cpu ms/GiB: CPU time of the subject's processes; for direct, the origin's)"
fi

# hold_tunnels NAME PORT HOLD: start tunnels.py as NAME-tunnels; returns when the N tunnels
# are up (or the client gave up, at the latest after 600 s); the caller stops NAME-tunnels
hold_tunnels() {
	: > "$OUT/logs/$1-tunnels.out"
	spawn "$1-tunnels" timeout $(($3 + 660)) python3 "$HERE/tunnels.py" "$2" $P_ORIGIN "$N" "$3" 60
	local i
	for i in $(seq 6000); do
		grep -q tunnels_ok "$OUT/logs/$1-tunnels.out" 2> /dev/null && return 0
		alive "${PID_OF[$1-tunnels]}" || return 1
		sleep 0.1
	done
	return 1
}

# ---- N idle CONNECT tunnels: resident memory per tunnel ----

if wants idle && [ "$HAVE_PY" = 1 ]; then
	say ""
	say "== $N idle CONNECT tunnels: growth of the proxy's resident memory (all its processes)"
	: > "$OUT/idle.tsv"
	for s in "${FWD[@]}"; do
		pid=${PID_OF[$s]}
		before=$(rss_kib "$pid")
		if hold_tunnels "$s" "${PORT[$s]}" 120; then
			sleep 1
			after=$(rss_kib "$pid")
			ok=$(grep -o 'tunnels_ok=[0-9]*' "$OUT/logs/$s-tunnels.out" | cut -d= -f2)
		else
			after=$(rss_kib "$pid")
			ok=0
		fi
		stop "$s-tunnels"
		per=$(((after - before) * 1024 / N))
		printf "%-10s %5s of %s tunnels  rss %7d -> %7d KiB  %6d bytes per tunnel\n" "$s" "${ok:-0}" "$N" \
			"$before" "$after" "$per" | tee -a "$REPORT"
		echo "$s ${ok:-0} $before $after $per" >> "$OUT/idle.tsv"
		sleep 2 # let the proxy close the tunnels before the next one starts
	done
fi

# ---- poll vs epoll: few and many connections ----

if wants multiplexer && [ "$HAVE_PY" = 1 ]; then
	say ""
	say "== poll vs epoll: ferry 1x1, 1k keep-alive req/s alone (median of $ROUNDS rounds) and beside $N idle tunnels (once)"
	: > "$OUT/mux.tsv"
	: > "$OUT/mux.summary"
	for r in $(seq "$ROUNDS"); do
		for m in poll epoll; do
			start_ferry "ferry-$m" 1 1 $m || continue
			set -- $(run_wrk "ferry-$m" 1k keepalive "$DUR")
			echo "$r $m 0 $2 $(($1 > 0 ? $5 * 1000 / $1 : 0)) $4 -" >> "$OUT/mux.tsv"
			if [ "$r" != 1 ]; then
				stop "ferry-$m"
				continue
			fi
			t0=$(date +%s.%N)
			if hold_tunnels "ferry-$m" "${PORT[ferry-$m]}" $((DUR + 120)); then
				t1=$(date +%s.%N)
				ok=$(grep -o 'tunnels_ok=[0-9]*' "$OUT/logs/ferry-$m-tunnels.out" | cut -d= -f2)
				set -- $(run_wrk "ferry-$m" 1k keepalive "$DUR")
				echo "$r $m $ok $2 $(($1 > 0 ? $5 * 1000 / $1 : 0)) $4 $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')" >> "$OUT/mux.tsv"
			else
				note "ferry-$m: the $N tunnels did not come up"
				echo "$r $m 0 - - - -" >> "$OUT/mux.tsv"
			fi
			stop "ferry-$m-tunnels"
			stop "ferry-$m"
		done
	done
	printf "%-6s %-14s %10s %11s %8s %12s\n" backend "open tunnels" req/s "cpu us/req" "x epoll" "setup s" | tee -a "$REPORT"
	for load in 0 N; do
		for m in poll epoll; do
			if [ $load = 0 ]; then sel='$3 == 0'; else sel='$3 > 0'; fi
			rows=$(awk -v m=$m "\$2 == m && $sel" "$OUT/mux.tsv")
			rps=$(echo "$rows" | awk '{print $4}' | median)
			cpu=$(echo "$rows" | awk '{print $5}' | median)
			tun=$(echo "$rows" | awk '{print $3}' | median)
			setup=$(echo "$rows" | awk '{print $7}' | median)
			x=$(for r in $(seq "$ROUNDS"); do
				awk -v r="$r" -v m=$m "\$1 == r && $sel {v[\$2] = \$4} END {if (v[\"epoll\"] > 0) printf \"%.4f\n\", v[m] / v[\"epoll\"]; else print \"-\"}" "$OUT/mux.tsv"
			done | median)
			printf "%-6s %-14s %10s %11s %8s %12s\n" $m "${tun:-0}" "$(awk -v v="$rps" 'BEGIN {if (v == "-") print "-"; else printf "%.0f", v}')" \
				"$cpu" "$(ratio "$x" 1)" "$setup" | tee -a "$REPORT"
			echo "$m $load $tun $rps $cpu $x $setup" >> "$OUT/mux.summary"
		done
	done
fi

# ---- processes x threads ----

if wants scaling; then
	say ""
	say "== ferry processes x threads: 1k keep-alive req/s (wrk -t1 -c$CONNS), median of $ROUNDS rounds; $(nproc) CPUs"
	: > "$OUT/scale.tsv"
	for r in $(seq "$ROUNDS"); do
		for cfg in $SCALE_CONFIGS; do
			start_ferry "ferry-$cfg" "${cfg%x*}" "${cfg#*x}" "$MULTIPLEXER" || continue
			run_wrk "ferry-$cfg" 1k keepalive 1 > /dev/null
			echo "$r $cfg $(run_wrk "ferry-$cfg" 1k keepalive "$DUR")" >> "$OUT/scale.tsv"
			stop "ferry-$cfg"
		done
	done
	base=${SCALE_CONFIGS%% *}
	printf "%-12s %10s %8s %11s\n" "procs x thr" req/s "x $base" "cpu us/req" | tee -a "$REPORT"
	for cfg in $SCALE_CONFIGS; do
		rps=$(awk -v c=$cfg '$2 == c {print $4}' "$OUT/scale.tsv" | median)
		cpu=$(awk -v c=$cfg '$2 == c && $3 > 0 {print $7 * 1000 / $3}' "$OUT/scale.tsv" | median)
		x=$(for r in $(seq "$ROUNDS"); do
			awk -v r="$r" -v c=$cfg -v b=$base '$1 == r {v[$2] = $4} END {if (v[b] > 0) printf "%.4f\n", v[c] / v[b]; else print "-"}' "$OUT/scale.tsv"
		done | median)
		printf "%-12s %10.0f %8s %11s\n" "$cfg" "$rps" "$(ratio "$x" 1)" "$(awk -v v="$cpu" 'BEGIN {if (v == "-") print "-"; else printf "%.1f", v}')" | tee -a "$REPORT"
	done
fi

# ---- the targets of doc/performance.md ----

say ""
say "== targets (ratios within this run)"
verdict() { # verdict LABEL VALUE OP LIMIT
	local v
	v=$(awk -v a="$2" -v op="$3" -v b="$4" 'BEGIN {if (a == "-" || a == "") print "n/a"; else if ((op == ">=" && a + 0 >= b + 0) || (op == "<" && a + 0 < b + 0)) print "met"; else print "MISSED"}')
	say "$(printf '%-52s %8s %s %-6s %s' "$1" "$(awk -v a="$2" 'BEGIN {if (a == "-" || a == "") print "-"; else printf "%.2f", a}')" "$3" "$4" "$v")"
}
hs() { [ -f "$OUT/http.summary" ] && awk -v o="$1" -v m="$2" -v s="$3" -v f="$4" '$1 == o && $2 == m && $3 == s {print $f}' "$OUT/http.summary"; }
if wants http; then
	verdict "1k keep-alive: ferry / best-rp" "$(hs 1k keepalive ferry 7)" ">=" 1.2
	for p in tinyproxy squid; do
		[ -n "${PORT[$p]:-}" ] && verdict "1k keep-alive: ferry / $p" "$(ratio "$(hs 1k keepalive ferry 4)" "$(hs 1k keepalive $p 4)")" ">=" 4
	done
	verdict "1k Connection: close: ferry / best-rp" "$(hs 1k close ferry 7)" ">=" 1.0
	verdict "64k keep-alive: ferry / best-rp" "$(hs 64k keepalive ferry 7)" ">=" 1.2
	verdict "64k keep-alive: ferry / direct" "$(hs 64k keepalive ferry 6)" ">=" 0.8
fi
if wants http && [ ${#RP[@]} -gt 0 ]; then
	# not a target, but what decides req/s when the CPUs are shared with wrk and the origin
	for c in $HTTP_CASES; do
		obj=${c%%:*} mode=${c#*:}
		lean=$(for p in "${RP[@]}"; do hs "$obj" "$mode" "$p" 5; done | grep -v '^-$' | sort -g | head -1)
		say "$(printf '%-52s %8s   (CPU per request; below 1: ferry is leaner)' "$obj $mode: ferry cpu / leanest rp cpu" \
			"$(ratio "$(hs "$obj" "$mode" ferry 5)" "$lean")")"
	done
fi
if [ -f "$OUT/tunnel.summary" ]; then
	verdict "CONNECT $BIG download: ferry / direct" "$(awk '$1 == "ferry" {print $3}' "$OUT/tunnel.summary")" ">=" 0.9
fi
if [ -f "$OUT/idle.tsv" ]; then
	verdict "$N idle tunnels: share that work (ferry)" "$(awk -v n="$N" '$1 == "ferry" {print $2 / n}' "$OUT/idle.tsv")" ">=" 1
	verdict "$N idle tunnels: ferry bytes per tunnel" "$(awk '$1 == "ferry" {print $5}' "$OUT/idle.tsv")" "<" 2048
fi
if [ -f "$OUT/mux.summary" ]; then
	for m in poll epoll; do
		verdict "$N tunnels + wrk work with $m (share of tunnels up)" "$(awk -v m=$m -v n="$N" '$1 == m && $2 == "N" {print $3 / n}' "$OUT/mux.summary")" ">=" 1
	done
fi
say "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
say "full report: $REPORT"
