#!/usr/bin/env bash
# Scaling out, checked: three txtd instances (the release binary) on
# loopback ports behind HAProxy running contrib/haproxy.cfg (its ports and
# stats socket substituted), under wrk load through HAProxy. One
# instance's master and workers are SIGKILLed, then another gets TERM
# (graceful stop: /healthz says 503 while it drains). Asserted: wrk saw no
# error and no non-2xx response; HAProxy answered no 5xx and retried every
# failed attempt on another instance; the two instances stopped getting
# requests and the survivor got them; the TERMed instance exited 0; and
# the survivor's /metrics parses with Python's prometheus_client parser
# and counts what HAProxy sent it.
#
# Usage: tests/haproxy/check.sh [TXTD_BINARY]   (from any directory)
# Needs: haproxy, wrk, socat, curl, python3 with prometheus_client.
# Knobs: PHASE (seconds between the steps, default 6), FRONT_PORT (18680).
set -euo pipefail
cd "$(dirname "$0")/../.."

txtd=${1:-target/release/txtd}
phase=${PHASE:-6}
front=${FRONT_PORT:-18680}
python=/usr/bin/python3
[ -x "$python" ] || python=python3
work=$(mktemp -d /tmp/txtd-haproxy.XXXXXX)
pids=()

# Everything this script started, by pid, on any exit.
cleanup() {
    for pid in "${pids[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    # Reaped quietly: no "Killed" job report for each.
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

fail() {
    echo "haproxy check FAILED: $*" >&2
    for f in "$work"/*.log; do
        echo "--- $f" >&2
        tail -n 20 "$f" >&2 || true
    done
    exit 1
}

children() {
    cat "/proc/$1/task/$1/children" 2>/dev/null || true
}

# Waits up to 10 s for a line matching $2 in file $1; prints the match.
wait_for_line() {
    for _ in $(seq 100); do
        if grep -m1 "$2" "$1" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    fail "no '$2' in $1"
}

declare -A master site admin
for i in 1 2 3; do
    "$txtd" fixtures/site --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
        --workers 2 --drain-timeout 10s 2>"$work/txtd$i.log" &
    master[$i]=$!
    pids+=("${master[$i]}")
done
for i in 1 2 3; do
    site[$i]=$(wait_for_line "$work/txtd$i.log" 'listening on ' | sed 's/.*listening on \([^ ]*\).*/\1/')
    admin[$i]=$(wait_for_line "$work/txtd$i.log" 'admin interface on ' | sed 's/.*admin interface on \([^ ]*\):.*/\1/')
    wait_for_line "$work/txtd$i.log" 'serving with 2 workers' >/dev/null
    pids+=($(children "${master[$i]}"))
    echo "txtd$i: master ${master[$i]}, site ${site[$i]}, admin ${admin[$i]}"
done

# contrib/haproxy.cfg with this run's ports and stats socket.
sock="$work/haproxy.sock"
sed -e "s|stats socket /run/haproxy/txtd-admin.sock|stats socket $sock|" \
    -e "s|bind 127.0.0.1:8080|bind 127.0.0.1:$front|" \
    -e "s|127.0.0.1:8081 check port 9081|${site[1]} check port ${admin[1]##*:}|" \
    -e "s|127.0.0.1:8082 check port 9082|${site[2]} check port ${admin[2]##*:}|" \
    -e "s|127.0.0.1:8083 check port 9083|${site[3]} check port ${admin[3]##*:}|" \
    contrib/haproxy.cfg >"$work/haproxy.cfg"
for i in 1 2 3; do
    grep -q "server txtd$i ${site[$i]} check port ${admin[$i]##*:}" "$work/haproxy.cfg" ||
        fail "contrib/haproxy.cfg has no server line for txtd$i to substitute"
done
haproxy -c -q -f "$work/haproxy.cfg" || fail "haproxy -c"
haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
pids+=($!)

# `show stat` as "name field=value ..." lines for the backend and its servers.
stats() {
    echo "show stat" | socat stdio "unix-connect:$sock" 2>/dev/null | awk -F, '
        NR == 1 { sub(/^# /, ""); for (i = 1; i <= NF; i++) col[$i] = i; next }
        $1 == "txtd" || $1 == "www" {
            printf "%s/%s", $1, $2
            n = split("status check_status stot hrsp_2xx hrsp_5xx econ eresp wretr wredis ereq", f, " ")
            for (i = 1; i <= n; i++) printf " %s=%s", f[i], $(col[f[i]])
            printf "\n"
        }'
}
field() { # field STATS ROW NAME
    echo "$1" | awk -v row="$2" -v name="$3" '$1 == row {
        for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == name) print kv[2] } }'
}

# Every server passed its /healthz check (a server starts UP, unchecked).
checked() { stats | grep -c '^txtd/txtd[0-9] status=UP check_status=L7OK ' || true; }
for _ in $(seq 100); do
    [ "$(checked)" = 3 ] && break
    sleep 0.1
done
[ "$(checked)" = 3 ] || fail "not every server passed its check: $(stats)"

start=$(date +%s)
duration=$((phase * 4))
wrk -t 2 -c 8 -d "${duration}s" --timeout 5s "http://127.0.0.1:$front/hello.txt" >"$work/wrk.out" 2>&1 &
wrk_pid=$!
pids+=("$wrk_pid")

sleep "$phase"
before_kill=$(stats)
victims="${master[1]} $(children "${master[1]}" | tr '\n' ' ')"
echo "SIGKILL txtd1: master and workers $victims"
# shellcheck disable=SC2086
kill -KILL $victims
wait "${master[1]}" 2>/dev/null || true

sleep "$phase"
before_term=$(stats)
echo "TERM txtd2 (master ${master[2]})"
kill -TERM "${master[2]}"

sleep "$phase"
late=$(stats)
wait "$wrk_pid" || fail "wrk exited non-zero"
status=0
wait "${master[2]}" || status=$?
[ "$status" = 0 ] || fail "txtd2 exited $status after TERM"
final=$(stats)
elapsed=$(($(date +%s) - start))

cat "$work/wrk.out"
printf 'show stat, before the SIGKILL:\n%s\nbefore the TERM:\n%s\n%ss later:\n%s\nat the end:\n%s\n' \
    "$before_kill" "$before_term" "$phase" "$late" "$final"

# The client side: wrk saw every response, all 2xx.
requests=$(awk '/requests in/ { print $1 }' "$work/wrk.out")
[ "${requests:-0}" -gt 0 ] || fail "wrk sent no request"
if grep -q -e 'Non-2xx' -e 'Socket errors' "$work/wrk.out"; then
    fail "wrk saw failed requests"
fi
# HAProxy: no 5xx to the client, every failed attempt retried elsewhere.
for row in www/FRONTEND txtd/BACKEND; do
    [ "$(field "$final" "$row" hrsp_5xx)" = 0 ] || fail "$row answered 5xx"
done
errors=$(($(field "$final" txtd/BACKEND econ) + $(field "$final" txtd/BACKEND eresp)))
retried=$(($(field "$final" txtd/BACKEND wretr) + $(field "$final" txtd/BACKEND wredis)))
[ "$errors" -le "$retried" ] || fail "$errors failed attempts, only $retried retried"
# Traffic moved: after its check failed (fall 2 × inter 500 ms, well
# within a phase), a stopped instance got no request; the survivor got them.
delta() { echo $(($(field "$2" "txtd/$1" hrsp_2xx) - $(field "$3" "txtd/$1" hrsp_2xx))); }
[ "$(delta txtd1 "$final" "$before_term")" = 0 ] || fail "txtd1 got requests after it was killed"
[ "$(delta txtd2 "$final" "$late")" = 0 ] || fail "txtd2 got requests after its drain"
[ "$(delta txtd3 "$final" "$late")" -gt 0 ] || fail "txtd3 got no requests at the end"
[ "$(field "$before_kill" txtd/txtd1 hrsp_2xx)" -gt 0 ] || fail "txtd1 got no requests before"
[ "$(field "$final" txtd/txtd1 status)" = DOWN ] || fail "txtd1 not DOWN"
[ "$(field "$final" txtd/txtd2 status)" = DOWN ] || fail "txtd2 not DOWN"
[ "$(field "$final" txtd/txtd3 status)" = UP ] || fail "txtd3 not UP"

# The survivor's /metrics, through Python's own exposition parser: what
# HAProxy got from it, txtd counted (a response in flight when wrk
# stopped may be counted by one side only).
curl -sf "http://${admin[3]}/metrics" >"$work/metrics.txt" || fail "GET /metrics"
served=$(field "$final" txtd/txtd3 hrsp_2xx)
"$python" - "$work/metrics.txt" "$served" <<'EOF' || fail "/metrics"
import sys
from prometheus_client.parser import text_string_to_metric_families

text = open(sys.argv[1]).read()
families = {f.name: f for f in text_string_to_metric_families(text)}
for name in ["txtd_http_requests", "txtd_worker_restarts", "txtd_reloads", "txtd_upgrades"]:
    assert families[name].type == "counter", name
assert families["txtd_workers"].type == "gauge"
ok = next(s.value for s in families["txtd_http_requests"].samples
          if s.name == "txtd_http_requests_total" and s.labels == {"class": "2xx"})
served = int(sys.argv[2])
print(f"txtd3 counted {int(ok)} 2xx responses; HAProxy got {served} from it")
assert abs(ok - served) <= 8, (ok, served)
EOF

echo "haproxy check: $requests requests through HAProxy in ${elapsed}s, 0 failed;" \
    "2xx per server before the SIGKILL: txtd1=$(field "$before_kill" txtd/txtd1 hrsp_2xx)" \
    "txtd2=$(field "$before_kill" txtd/txtd2 hrsp_2xx) txtd3=$(field "$before_kill" txtd/txtd3 hrsp_2xx);" \
    "at the end: txtd1=$(field "$final" txtd/txtd1 hrsp_2xx) txtd2=$(field "$final" txtd/txtd2 hrsp_2xx)" \
    "txtd3=$(field "$final" txtd/txtd3 hrsp_2xx); retried attempts: $retried"
