/*  store: training states (params, Adam m, Adam v) in append-only segment
    files beside the database, so SQLite holds only small rows.

    A state written into SQLite is copied four times on its way to disk
    (into B-tree overflow pages, into the WAL, back out of the WAL at
    checkpoint and into the database file); measured, that copying was
    most of pbtd's CPU per result. Here a state is one pwritev from the
    decoded message straight into the active segment, and the database
    row that names it (segment, offset, length) is committed only after
    store_sync has made the bytes durable. Bytes no committed row names
    (a crash or a rolled-back change between the write and the commit)
    are garbage that segment collection (db_store_gc) reclaims.

    Directory: <db>-states/, files seg-<8 hex digits>.pbts. A new segment
    starts at every open and whenever the active one passes its size
    limit. A record is a 48-byte header (magic "PBTS", format 1, agent id,
    version, Adam t, n_params, CRC32C of the payload, CRC32C of the
    header) and the payload: params, adam_m, adam_v, each n_params
    little-endian float32. docs/schema.md has the layout.
*/
#ifndef PBTD_STORE_H
#define PBTD_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "proto.h"

typedef struct _store_t store_t;

//  Where a record is: segment id, byte offset and record length.
typedef struct {
    uint32_t seg;
    uint64_t off;
    uint32_t len;
} store_ref_t;

#define STORE_HEADER_BYTES 48

//  Open (creating if absent) the directory dir and start a new active
//  segment; segments roll over past segment_bytes. NULL (logged) on failure.
store_t *store_new (const char *dir, uint64_t segment_bytes);
void store_destroy (store_t **self_p);

//  Append one state; ref says where it went. Not durable until store_sync.
//  0, or -1 (logged: I/O error, disk full).
int store_append (store_t *self, int64_t agent_id, uint64_t version,
                  const proto_state_t *state, store_ref_t *ref);

//  Copy an existing record verbatim into the active segment (compaction).
int store_copy (store_t *self, const store_ref_t *from, store_ref_t *to);

//  Make every append so far durable (fdatasync). A failed sync also
//  retires the active segment: after a failed fsync the kernel may have
//  dropped the dirty pages, so nothing more is written to that file.
int store_sync (store_t *self);

//  store_sync in two halves, for a sync on another thread: begin gives
//  a descriptor to fdatasync (a dup the caller closes; -1: nothing to
//  sync), or -1 if a retired segment's sync failed (as store_sync); end
//  reports whether the fdatasync succeeded (failed: the active segment is
//  retired). No append may come between the two.
int store_sync_begin (store_t *self, int *fd);
void store_sync_end (store_t *self, bool ok);

//  Read a record into state (allocated; proto_state_free releases it),
//  checking its header, length and both checksums. expect_n_params 0
//  accepts any. 0, or -1 (logged, naming the segment and offset).
int store_read (store_t *self, const store_ref_t *ref, uint32_t expect_n_params,
                proto_state_t *state, uint64_t *adam_t);

//  Segment ids on disk, ascending; returns how many (at most max), -1 on error.
int store_segments (store_t *self, uint32_t *ids, int max);

//  Size in bytes of one segment, or -1 if it does not exist; age_s (if
//  not NULL) gets the seconds since it was last written.
int64_t store_segment_size (store_t *self, uint32_t seg, int64_t *age_s);

//  The segment appends go to now.
uint32_t store_active (store_t *self);

//  Delete a segment that no committed row names. Never the active one.
int store_drop (store_t *self, uint32_t seg);

//  Roll over at this size from the next append on.
void store_set_segment_bytes (store_t *self, uint64_t segment_bytes);

//  Bytes in all files (segments and the reuse pool).
uint64_t store_bytes (store_t *self);

//  Bytes in segment files only (records, live or dead; not the pool).
uint64_t store_segment_bytes (store_t *self);

//  Segments retired since open.
uint64_t store_dropped (store_t *self);

//  Segments started since open (roll-overs; the first at open counts).
uint64_t store_started (store_t *self);

//  CRC32C (Castagnoli), hardware when the CPU has SSE4.2.
uint32_t store_crc32c (uint32_t crc, const void *data, size_t len);

#endif
