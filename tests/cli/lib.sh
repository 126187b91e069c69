# Shared by the CLI test scripts (source it after setting `src`): a scratch directory $tmp
# removed on exit, the server process $pid (when a script sets it) killed on exit, pass and
# fail counters, and the final verdict.
# shellcheck shell=bash
tmp=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok: $1"; }
bad() { failed=$((failed + 1)); echo "FAIL: $1"; }
# check NAME COMMAND...: ok when the command succeeds; a failure shows the start of
# $tmp/body, the last response a script saved there, if any.
check() {
  local name=$1
  shift
  if "$@"; then
    ok "$name"
  elif [ -s "$tmp/body" ]; then
    bad "$name: $(head -c 400 "$tmp/body")"
  else
    bad "$name"
  fi
}
# finish: the counts; the script's exit status (0 when nothing failed).
finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
