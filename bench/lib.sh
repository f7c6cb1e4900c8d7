# Helpers the bench scripts share; source it: . "$ROOT/bench/lib.sh"

# wait_log FILE NEEDLE [SECS (5)] [STEP (0.01)]: 0 once FILE holds NEEDLE (grep -E), 1 after
# SECS seconds, polling every STEP seconds.
wait_log() {
	local n
	n=$(awk -v s="${3:-5}" -v t="${4:-0.01}" 'BEGIN { printf "%d", s / t }')
	for _ in $(seq "$n"); do
		grep -qE "$2" "$1" 2>/dev/null && return 0
		sleep "${4:-0.01}"
	done
	return 1
}

# cpu_ticks PID: the clock ticks (user + system) the process has used so far; 0 when it is
# gone. Fields are counted after the command name, which may hold spaces.
cpu_ticks() {
	awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0
}
