#include "env.h"

#include <string.h>

extern const env_class_t env_rps_class;
extern const env_class_t env_soccer_class;

//  Registry of environment classes. New environments add a line here.
static const env_class_t *const s_classes [] = {
    &env_rps_class,
    &env_soccer_class,
    NULL
};

const env_class_t *
env_find (const char *name)
{
    for (int i = 0; s_classes [i]; i++)
        if (strcmp (s_classes [i]->name, name) == 0)
            return s_classes [i];
    return NULL;
}

int
env_script_index (const env_class_t *cls, const char *script)
{
    for (int i = 0; cls->scripts && cls->scripts [i]; i++)
        if (strcmp (cls->scripts [i], script) == 0)
            return i;
    return -1;
}
