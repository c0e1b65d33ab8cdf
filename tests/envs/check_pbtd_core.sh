#!/bin/sh
# pbtd must not contain the worker core (networks, PPO, match runner, game
# running) nor link OpenBLAS, nor include a core header. Exit 1 naming what
# leaked. Usage: check_pbtd_core.sh PATH_TO_PBTD SOURCE_ROOT
set -u
pbtd="$1"; src="$2"; bad=0
syms=$(nm --defined-only "$pbtd" | awk '{print $3}' \
       | grep -E '^(nn_|ppo_|match_|env_|cblas_|openblas|soccer_|pbt_env_entry)' || true)
if [ -n "$syms" ]; then
    echo "pbtd defines core symbols:"; echo "$syms" | head -20; bad=1
fi
undef=$(nm --undefined-only "$pbtd" | awk '{print $2}' \
        | grep -E '^(nn_|ppo_|match_|env_vec|cblas_|openblas)' || true)
if [ -n "$undef" ]; then
    echo "pbtd refers to core symbols:"; echo "$undef" | head -20; bad=1
fi
if ldd "$pbtd" | grep -qi blas; then
    echo "pbtd links a BLAS:"; ldd "$pbtd" | grep -i blas; bad=1
fi
inc=$(grep -nE '#include +"(env|nn|nn_fast|ppo|match|wconfig|soccer)\.h"' "$src"/daemon/*.c "$src"/daemon/*.h || true)
if [ -n "$inc" ]; then
    echo "daemon sources include core headers:"; echo "$inc"; bad=1
fi
[ $bad -eq 0 ] && echo "pbtd: no core symbols, no BLAS, no core includes"
exit $bad
