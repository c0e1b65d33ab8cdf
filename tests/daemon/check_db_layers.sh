#!/bin/sh
# The database layer (daemon/db.h and the db*.c behind it) reads and writes
# SQLite and returns C structs; MessagePack replies are packed where the
# control protocol lives (ctl.c, ctl_reply.c). db_priv.h is the db files'
# own header. Exit 1 naming what crossed. Usage: check_db_layers.sh SOURCE_ROOT
set -u
d="$1/daemon"; bad=0
pack=$(grep -lE '#include +[<"]msgpack' "$d"/db.h "$d"/db_priv.h "$d"/db*.c 2>/dev/null || true)
if [ -n "$pack" ]; then
    echo "the database layer includes msgpack.h:"; echo "$pack"; bad=1
fi
priv=$(grep -lE '#include +"db_priv\.h"' "$d"/*.c "$d"/*.h "$1"/tests/daemon/*.c 2>/dev/null \
       | grep -vE '/daemon/db(_[a-z]+)?\.c$' || true)
if [ -n "$priv" ]; then
    echo "db_priv.h included outside daemon/db*.c:"; echo "$priv"; bad=1
fi
sqlite=$(grep -lE '#include +<sqlite3\.h>' "$d"/*.c "$d"/*.h 2>/dev/null \
         | grep -vE '/daemon/db(_[a-z]+)?\.c$|/daemon/db_priv\.h$' || true)
if [ -n "$sqlite" ]; then
    echo "sqlite3.h included outside the database layer:"; echo "$sqlite"; bad=1
fi
[ $bad -eq 0 ] && echo "db layer: no msgpack, db_priv.h and sqlite3.h private to daemon/db*.c"
exit $bad
