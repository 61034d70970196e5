# bench/lib.sh - process and port helpers that bench/run.sh and bench/syscalls.sh share.
# Sourced, not run. The caller keeps the pids it started in the array STARTED; cleanup stops
# them (and only them, with their children) on exit.

have() { command -v "$1" > /dev/null 2>&1; }

alive() { # a process that exists and is not a zombie
	local st
	st=$(sed 's/.*) //' "/proc/$1/stat" 2> /dev/null | cut -d' ' -f1) || return 1
	[ -n "$st" ] && [ "$st" != Z ]
}

descendants() {
	local p
	for p in $(ps -o pid= --ppid "$1" 2> /dev/null); do
		descendants "$p"
		echo "$p"
	done
}

# stop_pid PID: SIGTERM to it and its children (listed before anything dies, so none is lost
# to re-parenting), SIGKILL to whatever is left after 5 seconds.
stop_pid() {
	local pid=$1 all p i
	[ -n "$pid" ] || return 0
	all="$pid $(descendants "$pid")"
	kill -TERM $all 2> /dev/null
	for i in $(seq 50); do
		local left=0
		for p in $all; do alive "$p" && left=1; done
		[ $left = 0 ] && break
		sleep 0.1
	done
	for p in $all; do alive "$p" && kill -KILL "$p" 2> /dev/null; done
	wait "$pid" 2> /dev/null
	return 0
}

cleanup() {
	local pid
	for pid in "${STARTED[@]}"; do alive "$pid" && stop_pid "$pid"; done
}

# Ports below the ephemeral range, so that no outgoing connection of this very run holds one.
EPH_LOW=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2> /dev/null || echo 32768)
[ "$EPH_LOW" -gt 12000 ] 2> /dev/null || EPH_LOW=32768
NEXT_PORT=$((10000 + RANDOM % (EPH_LOW - 12000)))
port_busy() { (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null; }
port_used() { # listened on, or bound by any socket
	port_busy "$1" && return 0
	have ss && [ -n "$(ss -Htan "( sport = :$1 )" 2> /dev/null)" ]
}
# alloc_port VAR: a port no socket uses
alloc_port() {
	while port_used "$NEXT_PORT"; do NEXT_PORT=$((NEXT_PORT + 1)); done
	printf -v "$1" '%s' "$NEXT_PORT"
	NEXT_PORT=$((NEXT_PORT + 1))
}
# wait_port PORT SECONDS PID: until PORT accepts; fails early when PID died
wait_port() {
	local i
	for i in $(seq $(($2 * 10))); do
		port_busy "$1" && return 0
		alive "$3" || return 1
		sleep 0.1
	done
	return 1
}
