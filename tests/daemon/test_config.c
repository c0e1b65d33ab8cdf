/*  config: pbtd's parsing agrees with lib/settings.c's table. Every key the
    table gives pbtd is read and stored (setting it to its default changes
    nothing), a value just outside its range or a misspelled key is refused
    naming the file, line and key, and the embedded default restates none
    of the table's defaults. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "ini.h"
#include "settings.h"

static char s_path [] = "/tmp/pbt-test-config-XXXXXX";

//  Write text to a fresh file; its path is s_path.
static const char *
s_file (const char *text)
{
    strcpy (s_path, "/tmp/pbt-test-config-XXXXXX");
    int fd = mkstemp (s_path);
    cr_assert (fd >= 0);
    cr_assert_eq (write (fd, text, strlen (text)), (ssize_t) strlen (text));
    close (fd);
    return s_path;
}

static int
s_load (config_t *cfg, const char *text, char *err, size_t err_len)
{
    const char *path = s_file (text);
    memset (cfg, 0, sizeof *cfg);
    int rc = config_load (cfg, path, err, err_len);
    unlink (path);
    return rc;
}

//  A key pbtd reads from its file (hparam.NAME needs a hyperparameter).
static bool
s_pbtd_key (const setting_t *s)
{
    return settings_owner (s->section) == SETTING_PBTD && strcmp (s->section, "hparam.NAME");
}

Test (config, every_default_is_what_pbtd_uses)
{
    static config_t base, one;
    char err [1024];
    cr_assert_eq (s_load (&base, "", err, sizeof err), 0, "%s", err);
    int n = 0;
    for (size_t i = 0; i < settings_count (); i++) {
        const setting_t *s = settings_at (i);
        if (!s_pbtd_key (s) || !s->dflt)
            continue;
        char text [512];
        snprintf (text, sizeof text, "[%s]\n%s = %s\n", s->section, s->name, s->dflt);
        cr_assert_eq (s_load (&one, text, err, sizeof err), 0, "%s", err);
        memset (one.path, 0, sizeof one.path);
        memset (base.path, 0, sizeof base.path);
        cr_expect (memcmp (&one, &base, sizeof one) == 0,
                   "[%s] %s = %s (its default) changes pbtd's configuration", s->section, s->name,
                   s->dflt);
        n++;
    }
    cr_expect_gt (n, 50);
}

Test (config, out_of_range_refused_naming_the_key)
{
    static config_t cfg;
    char err [1024];
    for (size_t i = 0; i < settings_count (); i++) {
        const setting_t *s = settings_at (i);
        if (!s_pbtd_key (s) || (s->type != SETTING_INT && s->type != SETTING_REAL))
            continue;
        for (int above = 0; above < 2; above++) {
            double bound = above ? s->max : s->min;
            if (fabs (bound) >= 1e15)
                continue;
            double step = s->type == SETTING_INT ? 1 : fmax (1e-6, fabs (bound) * 1e-6);
            char text [512];
            snprintf (text, sizeof text, "# a comment\n[%s]\n%s = %.17g\n", s->section, s->name,
                      above ? bound + step : bound - step);
            cr_expect_eq (s_load (&cfg, text, err, sizeof err), -1, "accepted: %s", text);
            char where [128];
            snprintf (where, sizeof where, "%s:3: [%s] %s: expected", s_path, s->section, s->name);
            cr_expect (strstr (err, where), "'%s' does not say '%s'", err, where);
        }
    }
}

Test (config, misspelled_key_refused_with_file_and_key)
{
    static config_t cfg;
    char err [1024];
    const char *last = "";
    int sections = 0;
    for (size_t i = 0; i < settings_count (); i++) {
        const setting_t *s = settings_at (i);
        if (settings_owner (s->section) != SETTING_PBTD || !strcmp (s->section, last))
            continue;
        last = s->section;
        //  [env] takes the game's options: a misspelled one is the game's to refuse.
        const char *section = strcmp (s->section, "hparam.NAME") ? s->section : "hparam.lr";
        char text [512];
        snprintf (text, sizeof text, "[%s]\n%ss = 1\n", section, s->name);
        cr_expect_eq (s_load (&cfg, text, err, sizeof err), -1, "accepted: %s", text);
        char where [128], key [80];
        snprintf (where, sizeof where, "%s:2:", s_path);
        snprintf (key, sizeof key, "%ss", s->name);
        cr_expect (strstr (err, where) && strstr (err, key), "'%s' does not name %s and %s",
                   err, where, key);
        if (strcmp (s->section, "env"))
            cr_expect (strstr (err, "unknown key"), "%s", err);
        sections++;
    }
    cr_expect_eq (sections, 9);
    //  A section that belongs to the worker is not pbtd's.
    cr_expect_eq (s_load (&cfg, "[worker]\nconnect = tcp://x:1\n", err, sizeof err), -1);
    cr_expect (strstr (err, ":1: unknown section [worker]"), "%s", err);
}

Test (config, embedded_default_restates_no_default)
{
    char err [256];
    ini_t *ini = ini_load_string (config_embedded, "<embedded>", err, sizeof err);
    cr_assert (ini, "%s", err);
    int keys = 0;
    for (size_t i = 0; i < ini_count (ini); i++) {
        const ini_entry_t *e = ini_entry (ini, i);
        const setting_t *s = e->key ? settings_find (e->section, e->key) : NULL;
        if (!s || !s->dflt || !strncmp (e->section, "hparam.", 7))
            continue;
        double v, d;
        cr_assert_eq (settings_parse (s, e->value, &v, err, sizeof err), 0, "%s", err);
        cr_assert_eq (settings_parse (s, s->dflt, &d, err, sizeof err), 0, "%s", err);
        cr_expect (strcmp (e->value, s->dflt) && (s->type == SETTING_PATH || s->type == SETTING_TEXT
                   || s->type == SETTING_ENDPOINT || v != d),
                   "the embedded default restates [%s] %s = %s", e->section, e->key, e->value);
        keys++;
    }
    cr_expect_eq (keys, 1);     // [security] plaintext = true: loopback needs no CURVE
    ini_destroy (&ini);
}

Test (config, hparam_bounds_within_what_the_worker_accepts)
{
    static config_t cfg;
    char err [1024];
    cr_expect_eq (s_load (&cfg, "[hparam.lr]\nmin = 0.001\nmax = 1\n", err, sizeof err), 0, "%s", err);
    cr_expect_eq (s_load (&cfg, "[hparam.lr]\nmin = 0.001\nmax = 1.5\n", err, sizeof err), -1);
    char where [128];
    snprintf (where, sizeof where, "%s:3: [hparam.lr]", s_path);
    cr_expect (strstr (err, where) && strstr (err, "worker accepts"), "%s", err);
    cr_expect_eq (s_load (&cfg, "[hparam.clip_coef]\nmin = -0.1\n", err, sizeof err), -1);
    cr_expect (strstr (err, "[hparam.clip_coef]"), "%s", err);
}
