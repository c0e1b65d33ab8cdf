#include "ini.h"

#include <assert.h>
#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct _ini_t {
    char *name;
    char *text;             // private copy; entries point into it
    ini_entry_t *entries;
    size_t count, cap;
};

static char *
s_trim (char *s)
{
    while (*s && isspace ((unsigned char) *s))
        s++;
    char *end = s + strlen (s);
    while (end > s && isspace ((unsigned char) end [-1]))
        *--end = 0;
    return s;
}

//  Cut a comment: '#' or ';' at the start or after whitespace.
static void
s_strip_comment (char *s)
{
    for (char *p = s; *p; p++)
        if ((*p == '#' || *p == ';') && (p == s || isspace ((unsigned char) p [-1]))) {
            *p = 0;
            return;
        }
}

static int
s_push (ini_t *self, const char *section, const char *key, const char *value, int line)
{
    if (self->count == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 32;
        ini_entry_t *e = realloc (self->entries, cap * sizeof *e);
        if (!e)
            return -1;
        self->entries = e;
        self->cap = cap;
    }
    self->entries [self->count++] = (ini_entry_t) { section, key, value, line };
    return 0;
}

static bool
s_valid_name (const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!(isalnum ((unsigned char) *s) || *s == '_' || *s == '.' || *s == '-'))
            return false;
    return true;
}

ini_t *
ini_load_string (const char *text, const char *name, char *err, size_t err_len)
{
    assert (text && name);
    ini_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (err, err_len, "%s: out of memory", name);
        return NULL;
    }
    self->name = strdup (name);
    self->text = strdup (text);
    if (!self->name || !self->text) {
        snprintf (err, err_len, "%s: out of memory", name);
        goto fail;
    }
    const char *section = "";
    int line = 0;
    char *p = self->text;
    while (*p) {
        line++;
        char *nl = strchr (p, '\n');
        char *next = nl ? nl + 1 : p + strlen (p);
        if (nl)
            *nl = 0;
        s_strip_comment (p);
        char *s = s_trim (p);
        if (*s == 0)
            ;
        else
        if (*s == '[') {
            char *close = strchr (s, ']');
            if (!close || close [1] != 0) {
                snprintf (err, err_len, "%s:%d: expected '[section]'", name, line);
                goto fail;
            }
            *close = 0;
            section = s_trim (s + 1);
            if (!s_valid_name (section)) {
                snprintf (err, err_len, "%s:%d: bad section name '%s'", name, line, section);
                goto fail;
            }
            if (s_push (self, section, NULL, NULL, line))
                goto oom;
        }
        else {
            char *eq = strchr (s, '=');
            if (!eq) {
                snprintf (err, err_len, "%s:%d: expected 'key = value', got '%s'", name, line, s);
                goto fail;
            }
            *eq = 0;
            char *key = s_trim (s);
            char *value = s_trim (eq + 1);
            if (!s_valid_name (key)) {
                snprintf (err, err_len, "%s:%d: bad key name '%s'", name, line, key);
                goto fail;
            }
            const ini_entry_t *prev = ini_find (self, section, key);
            if (prev) {
                snprintf (err, err_len, "%s:%d: key '%s' in [%s] repeats line %d",
                          name, line, key, section, prev->line);
                goto fail;
            }
            if (s_push (self, section, key, value, line))
                goto oom;
        }
        p = next;
    }
    return self;
oom:
    snprintf (err, err_len, "%s: out of memory", name);
fail:
    ini_destroy (&self);
    return NULL;
}

ini_t *
ini_load_file (const char *path, char *err, size_t err_len)
{
    FILE *f = fopen (path, "rb");
    if (!f) {
        snprintf (err, err_len, "%s: %s", path, strerror (errno));
        return NULL;
    }
    ini_t *self = NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    while (true) {
        if (cap - len < 4096) {
            cap = cap ? cap * 2 : 8192;
            if (cap > (16u << 20)) {
                snprintf (err, err_len, "%s: file too large", path);
                goto cleanup;
            }
            char *nb = realloc (buf, cap + 1);
            if (!nb) {
                snprintf (err, err_len, "%s: out of memory", path);
                goto cleanup;
            }
            buf = nb;
        }
        size_t n = fread (buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror (f)) {
        snprintf (err, err_len, "%s: read error", path);
        goto cleanup;
    }
    if (memchr (buf, 0, len)) {
        snprintf (err, err_len, "%s: contains a NUL byte", path);
        goto cleanup;
    }
    buf [len] = 0;
    self = ini_load_string (buf, path, err, err_len);
cleanup:
    free (buf);
    fclose (f);
    return self;
}

void
ini_destroy (ini_t **self_p)
{
    assert (self_p);
    ini_t *self = *self_p;
    if (!self)
        return;
    free (self->name);
    free (self->text);
    free (self->entries);
    free (self);
    *self_p = NULL;
}

const char *
ini_name (const ini_t *self)
{
    return self->name;
}

size_t
ini_count (const ini_t *self)
{
    return self->count;
}

const ini_entry_t *
ini_entry (const ini_t *self, size_t index)
{
    assert (index < self->count);
    return &self->entries [index];
}

const ini_entry_t *
ini_find (const ini_t *self, const char *section, const char *key)
{
    for (size_t i = 0; i < self->count; i++) {
        const ini_entry_t *e = &self->entries [i];
        if (e->key && strcmp (e->section, section) == 0 && strcmp (e->key, key) == 0)
            return e;
    }
    return NULL;
}
