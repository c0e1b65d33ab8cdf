#include "mpobj.h"

#include <string.h>

#include "proto.h"

int
mpobj_unpack (msgpack_unpacked *up, const uint8_t *buf, size_t len)
{
    char err [PROTO_MAX_TEXT];
    if (!buf || proto_value_check (buf, len, err, sizeof err) != 0)
        return -1;
    size_t off = 0;
    return msgpack_unpack_next (up, (const char *) buf, len, &off) == MSGPACK_UNPACK_SUCCESS ? 0 : -1;
}

const msgpack_object *
mpobj_get (const msgpack_object *map, const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t klen = strlen (key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr [i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen
        &&  memcmp (k->via.str.ptr, key, klen) == 0)
            return &map->via.map.ptr [i].val;
    }
    return NULL;
}

bool
mpobj_num (const msgpack_object *o, double *out)
{
    if (!o)
        return false;
    switch (o->type) {
        case MSGPACK_OBJECT_POSITIVE_INTEGER: *out = (double) o->via.u64; return true;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER: *out = (double) o->via.i64; return true;
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:          *out = o->via.f64; return true;
        default:                              return false;
    }
}

double
mpobj_num_or (const msgpack_object *map, const char *key, double dflt)
{
    double v;
    return mpobj_num (mpobj_get (map, key), &v) ? v : dflt;
}

bool
mpobj_str (const msgpack_object *o, char *out, size_t out_len)
{
    if (!o || o->type != MSGPACK_OBJECT_STR || out_len == 0)
        return false;
    size_t n = o->via.str.size < out_len - 1 ? o->via.str.size : out_len - 1;
    memcpy (out, o->via.str.ptr, n);
    out [n] = 0;
    return true;
}

uint32_t
mpobj_len (const msgpack_object *array)
{
    return array && array->type == MSGPACK_OBJECT_ARRAY ? array->via.array.size : 0;
}

const msgpack_object *
mpobj_at (const msgpack_object *array, uint32_t i)
{
    return i < mpobj_len (array) ? &array->via.array.ptr [i] : NULL;
}
