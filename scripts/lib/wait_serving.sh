# Sourced by the scripts that start `sluice serve --port 0` in the background (tests/cli,
# benchmarks): the one place that knows how the daemon announces its address.
#
# wait_serving LOG PID [TRIES]: polls LOG every 0.1 s, up to TRIES times (default 300), for
# the "serving ... on http://HOST:PORT" line; prints http://HOST:PORT and returns 0, or
# returns 1 once PID has exited or the tries run out.
wait_serving() {
  local log=$1 pid=$2 tries=${3:-300} line
  for _ in $(seq "$tries"); do
    line=$(grep -o 'on http://[0-9.]*:[0-9]*' "$log" | head -n1)
    if [ -n "$line" ]; then
      echo "${line#on }"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
