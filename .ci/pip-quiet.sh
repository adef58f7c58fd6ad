#!/bin/sh
# Runs a pip command and passes its output through, less what is known harmless:
# - this machine's pip configuration names local package mirrors (extra-index-url
#   file:///opt/...), and pip warns "Location 'file:///...' is ignored: it is neither a file nor
#   a directory" for each mirror that lacks a package, about 130 times per install;
# - setuptools 84+ tells every editable install of a package-dir layout, as a warning block,
#   that a folder named like the package in the working directory would shadow it (this
#   project's folders are mapped to agentstream.*, and no folder is named agentstream).
# Everything else, and pip's exit status, is kept.
out=$(mktemp)
"$@" >"$out" 2>&1
status=$?
grep -v "^WARNING: Location 'file:[^']*' is ignored: it is neither a file nor a directory\.\$" "$out" | awk '
  /BuildBackendWarning: Editable installation\.$/ { skip = 1; next }
  skip && /with strategy, WheelFile\(wheel_path, "w"\) as wheel_obj:$/ { skip = 0; next }
  skip && (/^ *!!$/ || /^ *$/ || /^ *\*+$/ || /Please be careful with folders/ || /name as your package as they may take precedence/) { next }
  { skip = 0; print }'
rm -f "$out"
exit $status
