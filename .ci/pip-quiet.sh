#!/bin/sh
# Runs a pip command and passes its output through, less one known-harmless line: this machine's
# pip configuration names local package mirrors (extra-index-url file:///opt/...), and pip warns
# "Location 'file:///...' is ignored: it is neither a file nor a directory" for each mirror that
# lacks a package, about 130 times per install. Everything else, and pip's exit status, is kept.
out=$(mktemp)
"$@" >"$out" 2>&1
status=$?
grep -v "^WARNING: Location 'file:[^']*' is ignored: it is neither a file nor a directory\.\$" "$out"
rm -f "$out"
exit $status
