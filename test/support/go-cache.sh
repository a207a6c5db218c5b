# Sourced by the build scripts of the Go programs the tests run (kube/, pulumi/, stripe/):
# what each of them does the same way. Not run on its own.

# CI may run without HOME; Go needs one for its caches, and Node's os.homedir() (which the
# test harnesses use to find the binaries) falls back to the same passwd entry.
export HOME="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"

# require_go <script> <what needs it>: stops with one line when `go` is missing.
require_go() {
  if ! command -v go >/dev/null 2>&1; then
    echo "$1: the 'go' command is missing ($2)" >&2
    exit 1
  fi
}

# module_version <go.mod> <module>: the version <go.mod> requires <module> at (the harnesses
# read it the same way).
module_version() {
  awk -v m="$2" '$1 != "//" { for (i = 1; i < NF; i++) if ($i == m && $(i + 1) ~ /^v[0-9]/) { print $(i + 1); exit } }' "$1"
}

# begin_build <cache> <dest> <binary>...: when every <binary> (a path under <dest>) exists,
# prints <dest> and exits. Otherwise takes the cache's lock (a second caller waits, then finds
# the binaries), makes $work, a temp folder removed on exit, and sets GOFLAGS: the machine's
# module proxy, no toolchain download, no VCS stamping (the modules live inside the project's
# git checkout), and go.sum must already hold every hash.
begin_build() {
  local cache="$1" dest="$2"
  shift 2
  built() {
    local binary
    for binary in "$@"; do [[ -x "$dest/$binary" ]] || return 1; done
  }
  if built "$@"; then
    echo "$dest"
    exit 0
  fi
  mkdir -p "$cache"
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$cache/.lock"
    flock 9
    if built "$@"; then
      echo "$dest"
      exit 0
    fi
  fi
  work="$(mktemp -d "$cache/.build.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  export GOFLAGS="-buildvcs=false -mod=readonly -trimpath"
}
