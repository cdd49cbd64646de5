#!/usr/bin/env bash
# Install the pinned n8n used by the real-n8n tests into a cache outside the repository, once.
# Usage: .ci/install-n8n.sh [CACHE_DIR]   (prints the path of the n8n binary)
set -euo pipefail
version="2.8.4"
cache="${1:-${TIERWISE_N8N_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tierwise/n8n-$version}}"
bin="$cache/node_modules/.bin/n8n"
if [ -x "$bin" ] && [ "$("$bin" --version 2>/dev/null | tail -n 1)" = "$version" ]; then
  echo "$bin"
  exit 0
fi
mkdir -p "$cache"
cd "$cache"
# n8n-nodes-base pins xlsx to a tarball on a host the registries do not cover; the registry republish is identical.
printf '{"name":"tierwise-n8n-cache","private":true,"overrides":{"xlsx":"npm:@e965/xlsx@0.20.2"}}\n' > package.json
npm install --no-audit --no-fund --loglevel=error "n8n@$version" >&2
"$bin" --version >&2
echo "$bin"
