/*  settings-dump: lib/settings.c's table as tab-separated lines, for
    scripts/config-md.py (docs/config.md) and the tests that check
    `pbtd --print-config` against it. Not installed.

    Columns: owner (pbtd, worker, seat), section, name, default ("-" for
    none), what it accepts, doc.
*/
#include <stdio.h>

#include "settings.h"

int
main (void)
{
    static const char *owners [] = { "pbtd", "worker", "seat" };
    for (size_t i = 0; i < settings_count (); i++) {
        const setting_t *s = settings_at (i);
        char what [200];
        settings_describe (s, what, sizeof what);
        printf ("%s\t%s\t%s\t%s\t%s\t%s\n", owners [settings_owner (s->section)], s->section,
                s->name, s->dflt ? s->dflt : "-", what, s->doc);
    }
    return 0;
}
