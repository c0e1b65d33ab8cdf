/*  Helpers shared by the tests/learn programs: fixture files and error
    measures. Header-only so each test program stays one source file. */
#ifndef PBT_LEARN_UTIL_H
#define PBT_LEARN_UTIL_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIX_MAX_ARRAYS 32

//  A fixture file: lines "name count v1 v2 ...", '#' lines are comments.
typedef struct {
    int n;
    char name [FIX_MAX_ARRAYS][32];
    size_t count [FIX_MAX_ARRAYS];
    double *data [FIX_MAX_ARRAYS];
} fixture_t;

static inline void
fixture_load (fixture_t *fx, const char *file)
{
    const char *root = getenv ("PBT_SOURCE_ROOT");
    cr_assert (root, "PBT_SOURCE_ROOT is not set (run through meson test)");
    char path [1024];
    snprintf (path, sizeof path, "%s/tests/learn/fixtures/%s", root, file);
    FILE *f = fopen (path, "r");
    cr_assert (f, "cannot open %s", path);
    memset (fx, 0, sizeof *fx);
    char name [32];
    int c;
    while ((c = fgetc (f)) != EOF) {
        if (c == '#') {
            while ((c = fgetc (f)) != EOF && c != '\n')
                ;
            continue;
        }
        if (c == '\n' || c == ' ')
            continue;
        ungetc (c, f);
        size_t count;
        cr_assert (fscanf (f, "%31s %zu", name, &count) == 2, "bad fixture header in %s", path);
        cr_assert (fx->n < FIX_MAX_ARRAYS);
        int i = fx->n++;
        snprintf (fx->name [i], sizeof fx->name [i], "%s", name);
        fx->count [i] = count;
        fx->data [i] = calloc (count + 1, sizeof (double));
        for (size_t k = 0; k < count; k++)
            cr_assert (fscanf (f, "%lf", &fx->data [i][k]) == 1, "short array %s in %s", name, path);
    }
    fclose (f);
}

static inline const double *
fixture_get (const fixture_t *fx, const char *name, size_t *count)
{
    for (int i = 0; i < fx->n; i++)
        if (strcmp (fx->name [i], name) == 0) {
            if (count)
                *count = fx->count [i];
            return fx->data [i];
        }
    cr_assert_fail ("fixture has no array %s", name);
    return NULL;
}

//  A float copy of a fixture array (caller frees).
static inline float *
fixture_floats (const fixture_t *fx, const char *name, size_t *count)
{
    size_t n;
    const double *d = fixture_get (fx, name, &n);
    float *out = malloc (sizeof (float) * (n + 1));
    for (size_t i = 0; i < n; i++)
        out [i] = (float) d [i];
    if (count)
        *count = n;
    return out;
}

static inline void
fixture_free (fixture_t *fx)
{
    for (int i = 0; i < fx->n; i++)
        free (fx->data [i]);
    memset (fx, 0, sizeof *fx);
}

//  ||a - b|| / max(||a||, ||b||, tiny): the usual relative error of a
//  gradient check.
static inline double
rel_error (const double *a, const double *b, size_t n)
{
    double d = 0, na = 0, nb = 0;
    for (size_t i = 0; i < n; i++) {
        d += (a [i] - b [i]) * (a [i] - b [i]);
        na += a [i] * a [i];
        nb += b [i] * b [i];
    }
    double den = sqrt (na > nb ? na : nb);
    return sqrt (d) / (den > 1e-30 ? den : 1e-30);
}

#endif
