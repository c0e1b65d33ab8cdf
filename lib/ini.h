/*  ini: a small, strict INI reader shared by pbtd and pbt-worker.

    Syntax: `[section]` headers, `key = value` lines, blank lines, and
    comments starting with `#` or `;` (at the start of a line, or after
    whitespace inside a line). Keys outside any section belong to the
    section "". Values are trimmed; quotes are not interpreted.

    The reader only splits the text: callers decide what is a known section
    or key and report unknown ones with ini_entry's line, so every error a
    user sees names file:line. A key repeated within one section is an
    error here, because silently keeping one of two values hides mistakes.
*/
#ifndef PBT_INI_H
#define PBT_INI_H

#include <stddef.h>

typedef struct _ini_t ini_t;

typedef struct {
    const char *section;    // section name ("" before the first header)
    const char *key;        // NULL for a section header line
    const char *value;      // NULL for a section header line
    int line;               // 1-based line number
} ini_entry_t;

//  Read and parse a file. Returns NULL with "file:line: why" in err.
ini_t *ini_load_file (const char *path, char *err, size_t err_len);

//  Parse text held in memory; name is used in messages (e.g. "<embedded>").
ini_t *ini_load_string (const char *text, const char *name, char *err, size_t err_len);

//  Destroy; accepts NULL and nulls the pointer.
void ini_destroy (ini_t **self_p);

//  Name given at load (the path for files).
const char *ini_name (const ini_t *self);

//  Entries in file order (section headers included, key == NULL).
size_t ini_count (const ini_t *self);
const ini_entry_t *ini_entry (const ini_t *self, size_t index);

//  The entry for section/key, or NULL.
const ini_entry_t *ini_find (const ini_t *self, const char *section, const char *key);

#endif
