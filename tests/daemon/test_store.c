//  store.c against real files: round trips, checksums, roll-over, reuse.
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"

static char s_dir [256];

static void
s_setup (void)
{
    snprintf (s_dir, sizeof s_dir, "/tmp/pbt-test-store-XXXXXX");
    cr_assert_not_null (mkdtemp (s_dir));
}

static void
s_teardown (void)
{
    char cmd [400];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    cr_assert_eq (system (cmd), 0);
}

TestSuite (store, .init = s_setup, .fini = s_teardown, .timeout = 30);

static void
s_state (proto_state_t *st, uint32_t n, float base)
{
    cr_assert_eq (proto_state_alloc (st, n), 0);
    for (uint32_t i = 0; i < n; i++) {
        st->params [i] = base + (float) i;
        st->adam_m [i] = -base - (float) i;
        st->adam_v [i] = base * 0.5f + (float) i;
    }
    st->adam_t = (uint64_t) base + 3;
}

static void
s_assert_state (const proto_state_t *st, uint32_t n, float base)
{
    cr_assert_eq (st->n_params, n);
    for (uint32_t i = 0; i < n; i++) {
        cr_assert_eq (st->params [i], base + (float) i);
        cr_assert_eq (st->adam_m [i], -base - (float) i);
        cr_assert_eq (st->adam_v [i], base * 0.5f + (float) i);
    }
    cr_assert_eq (st->adam_t, (uint64_t) base + 3);
}

//  Published check values of CRC-32C (RFC 3720 appendix B.4, iSCSI).
Test (store, crc32c_known_answers)
{
    cr_assert_eq (store_crc32c (0, "123456789", 9), 0xE3069283u);
    uint8_t zeros [32] = { 0 }, ones [32];
    memset (ones, 0xFF, sizeof ones);
    cr_assert_eq (store_crc32c (0, zeros, 32), 0x8A9136AAu);
    cr_assert_eq (store_crc32c (0, ones, 32), 0x62A8AB43u);
    //  Incremental equals one pass.
    cr_assert_eq (store_crc32c (store_crc32c (0, "1234", 4), "56789", 5), 0xE3069283u);
}

Test (store, round_trip_and_reopen)
{
    char dir [300];
    snprintf (dir, sizeof dir, "%s/states", s_dir);
    store_t *store = store_new (dir, 1 << 20);
    cr_assert_not_null (store);
    proto_state_t a, b, got;
    s_state (&a, 100, 1.0f);
    s_state (&b, 7, 500.0f);
    store_ref_t ra, rb;
    cr_assert_eq (store_append (store, 3, 9, &a, &ra), 0);
    cr_assert_eq (store_append (store, 4, 2, &b, &rb), 0);
    cr_assert_eq (ra.len, STORE_HEADER_BYTES + 12 * 100);
    cr_assert_eq (rb.off, ra.off + ra.len);
    cr_assert_eq (store_sync (store), 0);
    cr_assert_eq (store_read (store, &ra, 100, &got, NULL), 0);
    s_assert_state (&got, 100, 1.0f);
    proto_state_free (&got);
    //  The caller's expected size is checked.
    cr_assert_eq (store_read (store, &rb, 8, &got, NULL), -1);
    cr_assert_null (got.params);
    uint32_t first = store_active (store);
    store_destroy (&store);
    cr_assert_null (store);
    //  A new process appends to a new segment and reads the old one.
    store = store_new (dir, 1 << 20);
    cr_assert_not_null (store);
    cr_assert_gt (store_active (store), first);
    cr_assert_eq (store_read (store, &rb, 7, &got, NULL), 0);
    s_assert_state (&got, 7, 500.0f);
    proto_state_free (&got);
    proto_state_free (&a);
    proto_state_free (&b);
    store_destroy (&store);
}

static void
s_flip (int fd, off_t at)
{
    uint8_t byte;
    cr_assert_eq (pread (fd, &byte, 1, at), 1);
    byte ^= 0x10;
    cr_assert_eq (pwrite (fd, &byte, 1, at), 1);
}

//  Every kind of damage is refused, naming the record, never returned as data.
Test (store, damage_is_detected)
{
    char dir [300], path [400];
    snprintf (dir, sizeof dir, "%s/states", s_dir);
    store_t *store = store_new (dir, 1 << 20);
    cr_assert_not_null (store);
    proto_state_t a, got;
    s_state (&a, 50, 2.0f);
    store_ref_t r;
    cr_assert_eq (store_append (store, 1, 1, &a, &r), 0);
    cr_assert_eq (store_sync (store), 0);
    snprintf (path, sizeof path, "%s/seg-%08x.pbts", dir, r.seg);
    int fd = open (path, O_RDWR);
    cr_assert_geq (fd, 0);
    //  One flipped payload byte (payload checksum), then one flipped header
    //  byte, the version (header checksum): refused, and read again once
    //  the byte is put back.
    off_t at [2] = { (off_t) r.off + STORE_HEADER_BYTES + 77, (off_t) r.off + 16 };
    for (int k = 0; k < 2; k++) {
        s_flip (fd, at [k]);
        cr_assert_eq (store_read (store, &r, 50, &got, NULL), -1, "flip %d", k);
        s_flip (fd, at [k]);
        cr_assert_eq (store_read (store, &r, 50, &got, NULL), 0);
        proto_state_free (&got);
    }
    //  A reference whose length disagrees with the header.
    store_ref_t wrong = r;
    wrong.len -= 4;
    cr_assert_eq (store_read (store, &wrong, 0, &got, NULL), -1);
    //  A reference past the end of the file (a torn tail).
    wrong = r;
    wrong.off += r.len;
    cr_assert_eq (store_read (store, &wrong, 0, &got, NULL), -1);
    //  A segment that is gone.
    wrong = r;
    wrong.seg += 100;
    cr_assert_eq (store_read (store, &wrong, 0, &got, NULL), -1);
    cr_assert_eq (store_read (store, &r, 50, &got, NULL), 0);
    s_assert_state (&got, 50, 2.0f);
    proto_state_free (&got);
    close (fd);
    proto_state_free (&a);
    store_destroy (&store);
}

//  Segments roll over at their size; a dropped one is pooled and reused
//  for a later segment, whose new records read back despite the old bytes
//  left in the file; copies (compaction) keep the record verbatim.
Test (store, roll_over_drop_reuse_copy)
{
    char dir [300];
    snprintf (dir, sizeof dir, "%s/states", s_dir);
    store_t *store = store_new (dir, 2000);
    cr_assert_not_null (store);
    proto_state_t a, got;
    s_state (&a, 40, 9.0f);                 // 528-byte records: three per segment
    store_ref_t refs [12];
    for (int i = 0; i < 12; i++) {
        a.params [0] = (float) i;
        cr_assert_eq (store_append (store, i, 1, &a, &refs [i]), 0);
    }
    cr_assert_eq (store_sync (store), 0);
    cr_assert_eq (refs [2].seg, refs [0].seg);
    cr_assert_eq (refs [3].seg, refs [0].seg + 1);
    cr_assert_eq (refs [11].seg, refs [0].seg + 3);
    uint32_t ids [16];
    cr_assert_eq (store_segments (store, ids, 16), 4);
    uint64_t before = store_bytes (store);
    //  The first segment goes to the pool: same bytes on disk, one segment fewer.
    cr_assert_eq (store_drop (store, refs [0].seg), 0);
    cr_assert_eq (store_segments (store, ids, 16), 3);
    cr_assert_eq (store_bytes (store), before);
    cr_assert_eq (store_read (store, &refs [0], 40, &got, NULL), -1);
    //  Copy record 4 forward (fills the active segment, then reuses the pool).
    store_ref_t moved;
    cr_assert_eq (store_copy (store, &refs [4], &moved), 0);
    cr_assert_eq (store_copy (store, &refs [5], &moved), 0);
    cr_assert_eq (store_copy (store, &refs [4], &moved), 0);
    cr_assert_gt (moved.seg, refs [11].seg);
    cr_assert_eq (store_sync (store), 0);
    cr_assert_eq (store_read (store, &moved, 40, &got, NULL), 0);
    cr_assert_eq (got.params [0], 4.0f);
    cr_assert_eq (got.params [1], 10.0f);
    proto_state_free (&got);
    //  The reused file was the pool's: no pool file is left.
    char cmd [400];
    snprintf (cmd, sizeof cmd, "test -z \"$(ls '%s' | grep '^pool-')\"", dir);
    cr_assert_eq (system (cmd), 0);
    proto_state_free (&a);
    store_destroy (&store);
}
