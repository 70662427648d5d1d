#!/bin/sh
# Keel's container entrypoint: settings that are secrets arrive as files (compose secrets, mounted
# under /run/secrets), named by KEEL_..._FILE variables; Keel reads its settings from the
# environment. For each KEEL_X_FILE, export KEEL_X with the file's contents, then run the command.
# A named file that is missing or empty stops the container: an empty password would mean none.
set -eu

for name in $(env | sed -n 's/^\(KEEL_[A-Z0-9_]*\)_FILE=.*/\1/p'); do
    eval "file=\${${name}_FILE}"
    if [ ! -f "$file" ] || [ ! -s "$file" ]; then
        echo "keel: ${name}_FILE names $file, which is missing or empty" >&2
        exit 1
    fi
    value=$(cat "$file")
    export "$name=$value"
    unset "${name}_FILE"
done

exec "$@"
