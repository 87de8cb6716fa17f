#!/usr/bin/env bash
# Side-by-side load test of txtd, tuned nginx and lighttpd on the same response bodies
# (issue 8). One worker each, servers pinned to CPU 0, wrk pinned to CPU 1.
#
#   bench/compare.sh                     # ROUNDS=5 DURATION=5
#   ROUNDS=1 DURATION=2 bench/compare.sh # smoke test
#
# Each round's log line gives req/s, server CPU per 1000 requests, the share of a core
# the server and wrk used, the tree's RSS and errors; the report gives medians.
#
# Environment: ROUNDS (default 5), DURATION in seconds (default 5), CONNS (default 64),
# CARGO_TARGET_DIR (default <repo>/target). Needs root to install missing packages.
# Exit status 1 if any wrk socket error or non-2xx/3xx response was counted.
set -euo pipefail

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
CONNS=${CONNS:-64}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
TXTD=$TARGET_DIR/release/txtd
SERVERS=(txtd nginx lighttpd)
CLK_TCK=$(getconf CLK_TCK)

log() { printf '%s\n' "$*" >&2; }

# --- build and tools -----------------------------------------------------------------
log "building txtd (release)"
(cd "$ROOT" && cargo build --release -p txtd --quiet)

need=()
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || need+=(nginx)
command -v lighttpd >/dev/null 2>&1 || [[ -x /usr/sbin/lighttpd ]] || need+=(lighttpd)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v taskset >/dev/null 2>&1 || need+=(util-linux)
command -v curl >/dev/null 2>&1 || need+=(curl)
if ((${#need[@]})); then
    log "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
LIGHTTPD=$(command -v lighttpd || echo /usr/sbin/lighttpd)

# --- temp dir and cleanup ------------------------------------------------------------
TMP=$(mktemp -d /tmp/txtd-compare.XXXXXX)
chmod 755 "$TMP"
declare -A PID=()

cleanup() {
    local name pid
    for name in "${!PID[@]}"; do
        pid=${PID[$name]}
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    for name in "${!PID[@]}"; do
        pid=${PID[$name]}
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name ($pid) did not stop; SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- content -------------------------------------------------------------------------
mkdir -p "$TMP/txt" "$TMP/www"
# Plain text with the characters txtd has to escape, cut to an exact size.
make_text() {
    local size=$1 out=$2 i=0
    {
        while :; do
            printf 'line %05d: the quick brown fox jumps over the lazy dog; 1 < 2 && "x" > '"'"'y'"'"'\n' "$i"
            i=$((i + 1))
            ((i * 80 < size + 80)) || break
        done
    } | head -c "$size" >"$out"
}
make_text 1024 "$TMP/txt/1k.txt"
make_text 65536 "$TMP/txt/64k.txt"

free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 30000))
        if ! ss -Htln "sport = :$p" | grep -q .; then
            echo "$p"
            return
        fi
    done
}

wait_http() {
    local url=$1
    for _ in $(seq 100); do
        curl -fs -o /dev/null "$url" && return 0
        sleep 0.05
    done
    log "server at $url did not answer"
    return 1
}

# --- servers -------------------------------------------------------------------------
log "starting txtd"
taskset -c 0 "$TXTD" --workers 1 --listen 127.0.0.1:0 "$TMP/txt" 2>"$TMP/txtd.err" &
PID[txtd]=$!
for _ in $(seq 100); do
    grep -q 'listening on' "$TMP/txtd.err" && break
    sleep 0.05
done
TXTD_ADDR=$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$TMP/txtd.err" | head -n1)
[[ -n $TXTD_ADDR ]] || { cat "$TMP/txtd.err" >&2; exit 1; }
wait_http "http://$TXTD_ADDR/1k.txt"

# txtd's rendered pages become the static files of the peers.
for f in 1k 64k; do
    curl -fs -o "$TMP/www/$f.html" "http://$TXTD_ADDR/$f.txt"
done
chmod 644 "$TMP/www/"*.html

NGINX_PORT=$(free_port)
mkdir -p "$TMP/nginx"
cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log;
events { worker_connections 1024; }
http {
    types { text/html html; }
    default_type text/html;
    sendfile on;
    tcp_nopush on;
    open_file_cache max=10000 inactive=60s;
    access_log off;
    keepalive_requests 1000000000;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $TMP/www;
    }
}
EOF
log "starting nginx"
taskset -c 0 "$NGINX" -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" &
PID[nginx]=$!

LIGHTTPD_PORT=$(free_port)
while [[ $LIGHTTPD_PORT == "$NGINX_PORT" ]]; do LIGHTTPD_PORT=$(free_port); done
cat >"$TMP/lighttpd.conf" <<EOF
server.document-root = "$TMP/www"
server.bind = "127.0.0.1"
server.port = $LIGHTTPD_PORT
server.max-worker = 1
server.errorlog = "$TMP/lighttpd-error.log"
server.max-keep-alive-requests = 65535
mimetype.assign = (".html" => "text/html")
EOF
log "starting lighttpd"
taskset -c 0 "$LIGHTTPD" -D -f "$TMP/lighttpd.conf" &
PID[lighttpd]=$!

declare -A URL=(
    [txtd]="http://$TXTD_ADDR"
    [nginx]="http://127.0.0.1:$NGINX_PORT"
    [lighttpd]="http://127.0.0.1:$LIGHTTPD_PORT"
)
declare -A PATHOF=()
for s in "${SERVERS[@]}"; do
    if [[ $s == txtd ]]; then PATHOF[$s]=txt; else PATHOF[$s]=html; fi
done

# Every server must send the same bytes with a text/html type.
for s in "${SERVERS[@]}"; do
    for f in 1k 64k; do
        u="${URL[$s]}/$f.${PATHOF[$s]}"
        wait_http "$u"
        ct=$(curl -fs -o "$TMP/check" -w '%{content_type}' "$u")
        cmp -s "$TMP/check" "$TMP/www/$f.html" || { log "FAIL: $s body for $f differs"; exit 1; }
        [[ $ct == text/html* ]] || { log "FAIL: $s Content-Type for $f is '$ct'"; exit 1; }
    done
done
log "bodies: 1k page $(wc -c <"$TMP/www/1k.html") B, 64k page $(wc -c <"$TMP/www/64k.html") B, identical on all servers"

# --- measurement helpers -------------------------------------------------------------
# The pid and all its descendants.
tree_pids() {
    local p
    echo "$1"
    for p in $(pgrep -P "$1" || true); do
        tree_pids "$p"
    done
}

# CPU ticks (utime+stime) of the tree, plus the reaped children's (cutime+cstime) of the root.
cpu_ticks() {
    local root=$1 total=0 p rest
    for p in $(tree_pids "$root"); do
        rest=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null) || continue
        # After "pid (comm) ": field 1 is state, 12 utime, 13 stime, 14 cutime, 15 cstime.
        read -r -a f <<<"$rest"
        total=$((total + f[11] + f[12]))
        if [[ $p == "$root" ]]; then total=$((total + f[13] + f[14])); fi
    done
    echo "$total"
}

# Sum over the tree of a KiB field of a /proc/PID file: tree_kib ROOT FILE FIELD.
tree_kib() {
    local total=0 p v
    for p in $(tree_pids "$1"); do
        v=$(awk -v f="$3:" '$1 == f { print $2 }' "/proc/$p/$2" 2>/dev/null || true)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

# VmRSS summed over the tree.
rss_kib() { tree_kib "$1" status VmRSS; }

# Pss summed over the tree: each page shared by n processes counts 1/n, so the libc
# and binary pages a master and its worker share are not counted twice.
pss_kib() { tree_kib "$1" smaps_rollup Pss; }

median() {
    sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) { print "nan"; exit }
        if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# --- the runs ------------------------------------------------------------------------
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
CASES=("1k keep-alive" "1k close" "64k keep-alive" "64k close")
declare -A RPS=() CPU=() RSS=() PSS=() ERRS=() USE=()
FAILED=0

for c in "${CASES[@]}"; do
    read -r size mode <<<"$c"
    hdr=()
    if [[ $mode == close ]]; then hdr=(-H 'Connection: close'); fi
    for ((r = 1; r <= ROUNDS; r++)); do
        for s in "${SERVERS[@]}"; do
            u="${URL[$s]}/$size.${PATHOF[$s]}"
            pid=${PID[$s]}
            before=$(cpu_ticks "$pid")
            # wrk runs as the child of a shell that then prints its own stat line: the
            # reaped child's CPU ticks (cutime, cstime) are wrk's.
            out=$(bash -c 'taskset -c 1 wrk "$@" 2>&1; echo "STAT $(sed "s/^.*) //" /proc/$$/stat)"' \
                _ -t1 -c"$CONNS" -d"${DURATION}s" "${hdr[@]}" "$u")
            after=$(cpu_ticks "$pid")
            read -r -a st <<<"$(sed -n 's/^STAT //p' <<<"$out")"
            wrk_ticks=$((st[13] + st[14]))
            rss=$(rss_kib "$pid")
            pss=$(pss_kib "$pid")
            rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
            reqs=$(awk '/requests in/ { print $1 }' <<<"$out")
            sock=$(awk '/Socket errors:/ { gsub(",", ""); print $4 + $6 + $8 + $10 }' <<<"$out")
            non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $5 }' <<<"$out")
            errs=$((${sock:-0} + ${non2xx:-0}))
            if [[ -z $rps || -z $reqs || $reqs -eq 0 ]]; then
                log "wrk output for $s ($c):"; log "$out"; errs=$((errs + 1)); rps=0; reqs=1
            fi
            cpu_ms_per_k=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$reqs" \
                'BEGIN { printf "%.3f", t * 1000 / hz / (n / 1000) }')
            # Share of one core over the round: the server's, and wrk's (near 100: wrk
            # is the bottleneck, and req/s says little; compare CPU per request).
            use=$(awk -v s=$((after - before)) -v w="$wrk_ticks" -v hz="$CLK_TCK" -v d="$DURATION" \
                'BEGIN { printf "%.0f/%.0f", s * 100 / hz / d, w * 100 / hz / d }')
            RPS[$c,$s]+="$rps "
            CPU[$c,$s]+="$cpu_ms_per_k "
            RSS[$c,$s]+="$rss "
            PSS[$c,$s]+="$pss "
            USE[$c,$s]+="$use "
            ERRS[$c,$s]=$((${ERRS[$c,$s]:-0} + errs))
            if ((errs)); then
                FAILED=1
                log "!!!!!!!! FAIL: $s $c round $r: $sock socket errors, ${non2xx:-0} non-2xx/3xx !!!!!!!!"
            fi
            log "$(printf '%-15s round %d %-9s %10.0f req/s  %7s CPU ms/1k req  CPU %% server/wrk %7s  RSS %6d KiB  errors %d' \
                "$c" "$r" "$s" "$rps" "$cpu_ms_per_k" "$use" "$rss" "$errs")"
        done
    done
done

# --- report --------------------------------------------------------------------------
med() { tr ' ' '\n' <<<"$1" | grep . | median; }
echo
echo "Started $STARTED; load average $LOAD_BEFORE before the runs, $(cut -d' ' -f1-3 /proc/loadavg) after."
echo "Medians of $ROUNDS rounds, wrk -t1 -c$CONNS -d${DURATION}s; servers on CPU 0, wrk on CPU 1."
echo
echo "| case | txtd req/s | nginx req/s | lighttpd req/s | txtd/nginx | txtd/lighttpd | txtd CPU ms/1k req | nginx CPU ms/1k req | lighttpd CPU ms/1k req | txtd RSS | nginx RSS | lighttpd RSS | errors |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for c in "${CASES[@]}"; do
    declare -A m=() mc=() mr=()
    errs=0
    for s in "${SERVERS[@]}"; do
        m[$s]=$(med "${RPS[$c,$s]}")
        mc[$s]=$(med "${CPU[$c,$s]}")
        mr[$s]=$(med "${RSS[$c,$s]}")
        errs=$((errs + ERRS[$c,$s]))
    done
    awk -v c="$c" -v t="${m[txtd]}" -v n="${m[nginx]}" -v l="${m[lighttpd]}" \
        -v ct="${mc[txtd]}" -v cn="${mc[nginx]}" -v cl="${mc[lighttpd]}" \
        -v rt="${mr[txtd]}" -v rn="${mr[nginx]}" -v rl="${mr[lighttpd]}" -v e="$errs" 'BEGIN {
        printf "| %s | %.0f | %.0f | %.0f | %.2f | %.2f | %.1f | %.1f | %.1f | %.1f MiB | %.1f MiB | %.1f MiB | %d |\n",
            c, t, n, l, (n > 0 ? t / n : 0), (l > 0 ? t / l : 0), ct, cn, cl,
            rt / 1024, rn / 1024, rl / 1024, e }'
    unset m mc mr
done
echo
echo "Memory after the load (medians): RSS counts a page each process maps; PSS splits a"
echo "shared page (libc, the binary) between the processes that map it."
echo
echo "| case | txtd RSS | txtd PSS | nginx RSS | nginx PSS | lighttpd RSS | lighttpd PSS |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for c in "${CASES[@]}"; do
    line="| $c"
    for s in "${SERVERS[@]}"; do
        line+=$(awk -v r="$(med "${RSS[$c,$s]}")" -v p="$(med "${PSS[$c,$s]}")" \
            'BEGIN { printf " | %.1f MiB | %.1f MiB", r / 1024, p / 1024 }')
    done
    echo "$line |"
done
echo
echo "CPU use per round, % of one core, server/wrk (rounds in order):"
echo
echo "| case | txtd | nginx | lighttpd |"
echo "|---|---|---|---|"
for c in "${CASES[@]}"; do
    echo "| $c | ${USE[$c,txtd]% } | ${USE[$c,nginx]% } | ${USE[$c,lighttpd]% } |"
done
echo
echo "CPU: utime+stime of each server's process tree during the round, per 1000 requests."
echo "RSS, PSS: sums of VmRSS and of Pss over each server's process tree after the load."
echo "errors: wrk socket errors (connect, read, write, timeout) + non-2xx/3xx responses, all rounds."
if ((FAILED)); then
    echo
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    echo "FAIL: errors or non-2xx responses were counted (see the errors column)"
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    exit 1
fi
