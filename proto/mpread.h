/*  mpread: a bounds-checked, cursor-based MessagePack reader (internal to
    proto/).

    The reader never trusts the buffer: every length and element count is
    compared with the bytes that remain before it is believed, so a tiny
    frame cannot make anything downstream allocate or loop on a huge
    claimed size. Nothing here allocates.
*/
#ifndef PBT_MPREAD_H
#define PBT_MPREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Containers may nest this deep (the outermost value is depth 1).
#define MP_MAX_DEPTH 32

typedef enum {
    MP_NIL, MP_BOOL, MP_INT, MP_FLOAT, MP_STR, MP_BIN, MP_ARRAY, MP_MAP, MP_EXT
} mp_kind_t;

typedef struct {
    mp_kind_t kind;
    size_t offset;          // offset of the value's first byte in the reader's buffer
    bool b;                 // MP_BOOL
    bool neg;               // MP_INT: true if negative (read i), else read u
    uint64_t u;
    int64_t i;
    double d;               // MP_FLOAT (float32 widened)
    bool f32;               // MP_FLOAT arrived as float32
    const uint8_t *data;    // MP_STR/MP_BIN/MP_EXT payload
    uint32_t len;           // payload bytes
    int8_t ext_type;        // MP_EXT
    uint32_t count;         // MP_ARRAY elements / MP_MAP pairs
} mp_tok_t;

typedef struct {
    const uint8_t *buf;
    size_t len;
    size_t pos;
    size_t base;            // added to offsets in error messages
} mp_rd_t;

//  Start reading buf[0..len).
void mp_rd_init (mp_rd_t *rd, const uint8_t *buf, size_t len);

//  Read the next value's header. Scalars, strings, bins and exts are
//  consumed whole; for arrays and maps only the header is consumed and
//  count is guaranteed to fit in the remaining bytes (1 byte per element).
//  Returns 0, or -1 with a message (naming the offset) in err.
int mp_read (mp_rd_t *rd, mp_tok_t *tok, char *err, size_t err_len);

//  Skip one complete value whose container depth is `depth` (1 for a
//  top-level value). Extension types are rejected. Returns 0 or -1.
int mp_skip (mp_rd_t *rd, int depth, char *err, size_t err_len);

//  Name of a token's kind for error messages ("uint", "str", ...).
const char *mp_kind_name (const mp_tok_t *tok);

#endif
