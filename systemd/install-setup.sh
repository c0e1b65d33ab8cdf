#!/bin/sh
# Run by `meson install`: on a real install as root, set the host up as the
# package's postinst does (pbt-setup); with DESTDIR (staging, packaging) or
# as another user, say what to run instead.
if [ -n "${DESTDIR:-}" ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "pbt: run 'sudo $1' to create the pbt user and group and the CURVE keys" >&2
    exit 0
fi
exec "$1"
