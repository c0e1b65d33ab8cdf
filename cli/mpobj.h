/*  mpobj: reading msgpack-c object trees (pbtd's reply bodies, report data).

    msgpack-c allocates whatever count a container header claims, so
    mpobj_unpack checks the buffer with proto_value_check first: every count
    and length must fit in the bytes that remain before msgpack-c sees it.
*/
#ifndef PBT_MPOBJ_H
#define PBT_MPOBJ_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Check then unpack the single value in buf into up (msgpack_unpacked_init
//  first; destroy after). Returns 0, or -1 if buf is not exactly one
//  well-formed value.
int mpobj_unpack (msgpack_unpacked *up, const uint8_t *buf, size_t len);

//  Map lookup by string key; NULL if map is not a map or has no such key.
const msgpack_object *mpobj_get (const msgpack_object *map, const char *key);

//  A number (any integer or float) into out; false if o is not one.
bool mpobj_num (const msgpack_object *o, double *out);

//  map[key] as a number, or dflt.
double mpobj_num_or (const msgpack_object *map, const char *key, double dflt);

//  A string copied into out (NUL-terminated, truncated); false if not a string.
bool mpobj_str (const msgpack_object *o, char *out, size_t out_len);

//  Array length (0 if not an array) and element i (NULL if out of range).
uint32_t mpobj_len (const msgpack_object *array);
const msgpack_object *mpobj_at (const msgpack_object *array, uint32_t i);

#endif
