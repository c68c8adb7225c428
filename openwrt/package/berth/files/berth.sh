#!/bin/sh
# MIPS has no Node.js build: this package carries the JavaScript bundle and the helper,
# and runs the bundle with a node found on PATH (none exists for MIPS today).
command -v node >/dev/null 2>&1 || { echo "berth: no Node.js on this device (MIPS has no Node.js build yet)" >&2; exit 127; }
exec node /usr/lib/berth/berth.cjs "$@"
