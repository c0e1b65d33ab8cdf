/*  store: training states in append-only segment files. See store.h. */
#include "store.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define STORE_MAGIC 0x53544250u        // "PBTS" little-endian
#define STORE_FORMAT 1u
#define STORE_MAX_SEGMENTS 65536
#define STORE_POOL 4                   // dead segments kept for reuse

struct _store_t {
    char *dir;
    int dir_fd;
    uint64_t segment_bytes;
    uint32_t active;                // id of the segment appends go to
    int active_fd;                  // -1 when retired (next append starts one)
    uint64_t active_size;
    bool dirty;                     // appended since the last sync
    bool lost_sync;                 // a retired segment's sync failed since the last store_sync
    uint64_t dropped;
    uint64_t started;
    //  Dead segments renamed pool-<n>.pbts for reuse: overwriting a file
    //  whose blocks are allocated and whose pages are cached costs less
    //  than growing a new one (no block allocation, no size change for
    //  fdatasync to journal), and unlinking a 64 MiB file took ~18 ms (under strace).
    uint32_t pool [STORE_POOL];
    int n_pool;
    uint32_t pool_seq;
};

//  --------------------------------------------------------------------------
//  CRC32C

static uint32_t s_crc_table [8][256];
static bool s_crc_ready;

static void
s_crc_init (void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        s_crc_table [0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            s_crc_table [t][i] = (s_crc_table [t - 1][i] >> 8)
                               ^ s_crc_table [0][s_crc_table [t - 1][i] & 0xFF];
    s_crc_ready = true;
}

static uint32_t
s_crc_soft (uint32_t crc, const uint8_t *p, size_t len)
{
    if (!s_crc_ready)
        s_crc_init ();
    while (len >= 8) {
        uint64_t w;
        memcpy (&w, p, 8);
        w ^= crc;
        crc = s_crc_table [7][w & 0xFF] ^ s_crc_table [6][(w >> 8) & 0xFF]
            ^ s_crc_table [5][(w >> 16) & 0xFF] ^ s_crc_table [4][(w >> 24) & 0xFF]
            ^ s_crc_table [3][(w >> 32) & 0xFF] ^ s_crc_table [2][(w >> 40) & 0xFF]
            ^ s_crc_table [1][(w >> 48) & 0xFF] ^ s_crc_table [0][w >> 56];
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = (crc >> 8) ^ s_crc_table [0][(crc ^ *p++) & 0xFF];
    return crc;
}

#if defined(__x86_64__)
#include <nmmintrin.h>
__attribute__ ((target ("sse4.2"))) static uint32_t
s_crc_hw (uint32_t crc, const uint8_t *p, size_t len)
{
    uint64_t c = crc;
    while (len >= 8) {
        uint64_t w;
        memcpy (&w, p, 8);
        c = _mm_crc32_u64 (c, w);
        p += 8;
        len -= 8;
    }
    uint32_t c32 = (uint32_t) c;
    while (len--)
        c32 = _mm_crc32_u8 (c32, *p++);
    return c32;
}
#endif

uint32_t
store_crc32c (uint32_t crc, const void *data, size_t len)
{
    crc = ~crc;
#if defined(__x86_64__)
    static int hw = -1;
    if (hw < 0)
        hw = __builtin_cpu_supports ("sse4.2") ? 1 : 0;
    if (hw)
        return ~s_crc_hw (crc, data, len);
#endif
    return ~s_crc_soft (crc, data, len);
}

//  --------------------------------------------------------------------------
//  Record header (little-endian on disk; pbtd runs on little-endian hosts,
//  as the wire format's raw float32 already assumes).

typedef struct {
    uint32_t magic;
    uint32_t format;
    int64_t agent_id;
    uint64_t version;
    uint64_t adam_t;
    uint32_t n_params;
    uint32_t payload_crc;
    uint32_t header_crc;            // over the 40 bytes before it
    uint32_t reserved;
} record_header_t;

_Static_assert (sizeof (record_header_t) == STORE_HEADER_BYTES, "header layout");

static void
s_segment_name (const store_t *self, uint32_t seg, char *out, size_t len)
{
    (void) self;
    snprintf (out, len, "seg-%08" PRIx32 ".pbts", seg);
}

static bool
s_parse_segment_name (const char *name, uint32_t *seg)
{
    unsigned int id;
    char tail;
    if (strlen (name) != 17 || sscanf (name, "seg-%8x.pbt%c", &id, &tail) != 2 || tail != 's')
        return false;
    *seg = id;
    return true;
}

static int
s_open_segment (store_t *self, uint32_t seg, int flags)
{
    char name [32];
    s_segment_name (self, seg, name, sizeof name);
    return openat (self->dir_fd, name, flags | O_CLOEXEC, 0600);
}

//  Start segment active+1. Its directory entry is made durable at once,
//  so a row committed later never names a file a crash could lose.
static int
s_start_segment (store_t *self)
{
    uint32_t next = self->active + 1;
    char name [32], pooled [32];
    s_segment_name (self, next, name, sizeof name);
    if (self->n_pool > 0) {
        snprintf (pooled, sizeof pooled, "pool-%08" PRIx32 ".pbts", self->pool [--self->n_pool]);
        if (renameat (self->dir_fd, pooled, self->dir_fd, name))
            log_warn ("store_pool_reuse_failed", "dir=%s file=%s errno=\"%s\"", self->dir,
                      pooled, strerror (errno));
    }
    int fd = openat (self->dir_fd, name, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        log_error ("store_segment_create_failed", "dir=%s seg=%" PRIu32 " errno=\"%s\"",
                   self->dir, next, strerror (errno));
        return -1;
    }
    if (fsync (self->dir_fd)) {
        log_error ("store_dir_sync_failed", "dir=%s errno=\"%s\"", self->dir, strerror (errno));
        close (fd);
        return -1;
    }
    self->active = next;
    self->active_fd = fd;
    self->active_size = 0;
    self->started++;
    return 0;
}

//  Finish the active segment: synced before it is closed, because the
//  next store_sync only syncs the new one.
static int
s_retire_active (store_t *self)
{
    int rc = 0;
    if (self->active_fd >= 0) {
        if (self->dirty && fdatasync (self->active_fd)) {
            log_error ("store_sync_failed", "dir=%s seg=%" PRIu32 " errno=\"%s\"",
                       self->dir, self->active, strerror (errno));
            //  The next store_sync must fail too: the transaction that wrote
            //  those bytes may not commit.
            self->lost_sync = true;
            rc = -1;
        }
        close (self->active_fd);
        self->active_fd = -1;
    }
    if (rc == 0)
        self->dirty = false;
    return rc;
}

//  The store's directory as a DIR stream of its own (the fd is dup'ed so
//  closedir leaves dir_fd open), rewound; NULL if it cannot be read.
static DIR *
s_opendir (store_t *self)
{
    int fd = dup (self->dir_fd);
    DIR *d = fd >= 0 ? fdopendir (fd) : NULL;
    if (!d && fd >= 0)
        close (fd);
    if (d)
        rewinddir (d);
    return d;
}

//  Pool files a previous run left: reuse them, or delete those over the limit.
static void
s_pool_scan (store_t *self)
{
    DIR *d = s_opendir (self);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir (d))) {
        unsigned int id;
        char tail;
        if (strlen (e->d_name) != 18 || sscanf (e->d_name, "pool-%8x.pbt%c", &id, &tail) != 2
        ||  tail != 's')
            continue;
        if (self->n_pool < STORE_POOL)
            self->pool [self->n_pool++] = id;
        else
            unlinkat (self->dir_fd, e->d_name, 0);
        if (id >= self->pool_seq)
            self->pool_seq = id + 1;
    }
    closedir (d);
}

store_t *
store_new (const char *dir, uint64_t segment_bytes)
{
    assert (dir);
    assert (segment_bytes >= STORE_HEADER_BYTES);
    store_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->dir_fd = -1;
    self->active_fd = -1;
    self->segment_bytes = segment_bytes;
    self->dir = strdup (dir);
    if (!self->dir)
        goto fail;
    if (mkdir (dir, 0700) && errno != EEXIST) {
        log_error ("store_mkdir_failed", "dir=%s errno=\"%s\"", dir, strerror (errno));
        goto fail;
    }
    self->dir_fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (self->dir_fd < 0) {
        log_error ("store_open_failed", "dir=%s errno=\"%s\"", dir, strerror (errno));
        goto fail;
    }
    //  Never append to a segment a crash may have left with a torn tail:
    //  start after the newest one.
    uint32_t *ids = malloc (STORE_MAX_SEGMENTS * sizeof *ids);
    if (!ids)
        goto fail;
    int n = store_segments (self, ids, STORE_MAX_SEGMENTS);
    self->active = n > 0 ? ids [n - 1] : 0;
    free (ids);
    s_pool_scan (self);
    if (n < 0 || s_start_segment (self))
        goto fail;
    return self;
fail:
    store_destroy (&self);
    return NULL;
}

void
store_destroy (store_t **self_p)
{
    assert (self_p);
    store_t *self = *self_p;
    if (!self)
        return;
    s_retire_active (self);
    if (self->dir_fd >= 0)
        close (self->dir_fd);
    free (self->dir);
    free (self);
    *self_p = NULL;
}

static int
s_pwritev_all (int fd, struct iovec *iov, int n, uint64_t off)
{
    while (n > 0) {
        ssize_t w = pwritev (fd, iov, n, (off_t) off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        off += (uint64_t) w;
        while (n > 0 && (size_t) w >= iov->iov_len) {
            w -= (ssize_t) iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (uint8_t *) iov->iov_base + w;
            iov->iov_len -= (size_t) w;
        }
    }
    return 0;
}

//  Write iov (total len bytes) at the end of the active segment.
static int
s_append_iov (store_t *self, struct iovec *iov, int n, uint64_t len, store_ref_t *ref)
{
    assert (len <= UINT32_MAX);
    if (self->active_fd >= 0 && self->active_size > 0
    &&  self->active_size + len > self->segment_bytes && s_retire_active (self))
        return -1;
    if (self->active_fd < 0 && s_start_segment (self))
        return -1;
    if (s_pwritev_all (self->active_fd, iov, n, self->active_size)) {
        //  The size does not move: the next append overwrites the partial bytes.
        log_error ("store_write_failed", "dir=%s seg=%" PRIu32 " off=%" PRIu64 " bytes=%" PRIu64
                   " errno=\"%s\"", self->dir, self->active, self->active_size, len,
                   strerror (errno));
        return -1;
    }
    ref->seg = self->active;
    ref->off = self->active_size;
    ref->len = (uint32_t) len;
    self->active_size += len;
    self->dirty = true;
    return 0;
}

int
store_append (store_t *self, int64_t agent_id, uint64_t version,
              const proto_state_t *state, store_ref_t *ref)
{
    assert (self && state && ref);
    assert (state->n_params > 0 && state->params && state->adam_m && state->adam_v);
    size_t bytes = (size_t) state->n_params * sizeof (float);
    record_header_t h = {
        .magic = STORE_MAGIC, .format = STORE_FORMAT, .agent_id = agent_id,
        .version = version, .adam_t = state->adam_t, .n_params = state->n_params,
    };
    uint32_t crc = store_crc32c (0, state->params, bytes);
    crc = store_crc32c (crc, state->adam_m, bytes);
    h.payload_crc = store_crc32c (crc, state->adam_v, bytes);
    h.header_crc = store_crc32c (0, &h, offsetof (record_header_t, header_crc));
    struct iovec iov [4] = {
        { &h, sizeof h }, { state->params, bytes }, { state->adam_m, bytes },
        { state->adam_v, bytes },
    };
    return s_append_iov (self, iov, 4, sizeof h + 3 * (uint64_t) bytes, ref);
}

//  Read len bytes at off of segment seg (the active fd when it is the
//  active one).
static int
s_pread (store_t *self, uint32_t seg, uint64_t off, void *buf, size_t len)
{
    int fd = seg == self->active && self->active_fd >= 0 ? self->active_fd
           : s_open_segment (self, seg, O_RDONLY);
    if (fd < 0) {
        log_error ("store_read_failed", "dir=%s seg=%" PRIu32 " off=%" PRIu64 " errno=\"%s\"",
                   self->dir, seg, off, strerror (errno));
        return -1;
    }
    size_t done = 0;
    int rc = 0;
    while (done < len) {
        ssize_t r = pread (fd, (uint8_t *) buf + done, len - done, (off_t) (off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            log_error ("store_read_failed", "dir=%s seg=%" PRIu32 " off=%" PRIu64
                       " why=\"%s\"", self->dir, seg, off,
                       r < 0 ? strerror (errno) : "segment shorter than the record");
            rc = -1;
            break;
        }
        done += (size_t) r;
    }
    if (fd != self->active_fd)
        close (fd);
    return rc;
}

static int
s_read_header (store_t *self, const store_ref_t *ref, record_header_t *h)
{
    if (ref->len < STORE_HEADER_BYTES) {
        log_error ("store_record_corrupt", "dir=%s seg=%" PRIu32 " off=%" PRIu64
                   " why=\"length %" PRIu32 " is shorter than a header\"",
                   self->dir, ref->seg, ref->off, ref->len);
        return -1;
    }
    if (s_pread (self, ref->seg, ref->off, h, sizeof *h))
        return -1;
    const char *why = NULL;
    if (h->magic != STORE_MAGIC)
        why = "bad magic";
    else
    if (h->header_crc != store_crc32c (0, h, offsetof (record_header_t, header_crc)))
        why = "header checksum mismatch";
    else
    if (h->format != STORE_FORMAT)
        why = "unknown record format";
    else
    if ((uint64_t) STORE_HEADER_BYTES + 12 * (uint64_t) h->n_params != ref->len)
        why = "length does not match n_params";
    if (why) {
        log_error ("store_record_corrupt", "dir=%s seg=%" PRIu32 " off=%" PRIu64 " why=\"%s\"",
                   self->dir, ref->seg, ref->off, why);
        return -1;
    }
    return 0;
}

int
store_read (store_t *self, const store_ref_t *ref, uint32_t expect_n_params,
            proto_state_t *state, uint64_t *adam_t)
{
    assert (self && ref && state);
    memset (state, 0, sizeof *state);
    record_header_t h;
    if (s_read_header (self, ref, &h))
        return -1;
    if (h.n_params == 0 || (expect_n_params && h.n_params != expect_n_params)) {
        log_error ("store_record_corrupt", "dir=%s seg=%" PRIu32 " off=%" PRIu64
                   " why=\"n_params %" PRIu32 ", expected %" PRIu32 "\"",
                   self->dir, ref->seg, ref->off, h.n_params, expect_n_params);
        return -1;
    }
    if (proto_state_alloc (state, h.n_params))
        return -1;
    size_t bytes = (size_t) h.n_params * sizeof (float);
    uint64_t off = ref->off + STORE_HEADER_BYTES;
    if (s_pread (self, ref->seg, off, state->params, bytes)
    ||  s_pread (self, ref->seg, off + bytes, state->adam_m, bytes)
    ||  s_pread (self, ref->seg, off + 2 * bytes, state->adam_v, bytes))
        goto fail;
    uint32_t crc = store_crc32c (0, state->params, bytes);
    crc = store_crc32c (crc, state->adam_m, bytes);
    if (store_crc32c (crc, state->adam_v, bytes) != h.payload_crc) {
        log_error ("store_record_corrupt", "dir=%s seg=%" PRIu32 " off=%" PRIu64
                   " why=\"payload checksum mismatch\"", self->dir, ref->seg, ref->off);
        goto fail;
    }
    state->adam_t = h.adam_t;
    if (adam_t)
        *adam_t = h.adam_t;
    return 0;
fail:
    proto_state_free (state);
    return -1;
}

int
store_copy (store_t *self, const store_ref_t *from, store_ref_t *to)
{
    assert (self && from && to);
    record_header_t h;
    if (s_read_header (self, from, &h))
        return -1;
    uint8_t *buf = malloc (from->len);
    if (!buf)
        return -1;
    int rc = -1;
    if (s_pread (self, from->seg, from->off, buf, from->len))
        goto done;
    size_t payload = from->len - STORE_HEADER_BYTES;
    if (store_crc32c (0, buf + STORE_HEADER_BYTES, payload) != h.payload_crc) {
        log_error ("store_record_corrupt", "dir=%s seg=%" PRIu32 " off=%" PRIu64
                   " why=\"payload checksum mismatch\"", self->dir, from->seg, from->off);
        goto done;
    }
    struct iovec iov = { buf, from->len };
    rc = s_append_iov (self, &iov, 1, from->len, to);
done:
    free (buf);
    return rc;
}

//  Whether a sync has anything to do: 1 yes, 0 nothing written since the
//  last, -1 an earlier sync was lost (reported once, then forgotten).
static int
s_sync_needed (store_t *self)
{
    if (self->lost_sync) {
        self->lost_sync = false;
        self->dirty = false;
        return -1;
    }
    return self->dirty && self->active_fd >= 0;
}

int
store_sync (store_t *self)
{
    assert (self);
    int need = s_sync_needed (self);
    if (need <= 0)
        return need;
    if (fdatasync (self->active_fd)) {
        log_error ("store_sync_failed", "dir=%s seg=%" PRIu32 " errno=\"%s\"", self->dir,
                   self->active, strerror (errno));
        close (self->active_fd);
        self->active_fd = -1;
        return -1;
    }
    self->dirty = false;
    return 0;
}

//  The sync of a group commit, off the reactor (committer.h): the thread
//  fdatasyncs a dup of the active segment's descriptor, then the reactor
//  reports how it went. The reactor appends nothing in between (it waits
//  for this sync before it commits), so a good sync covers every append.
int
store_sync_begin (store_t *self, int *fd)
{
    assert (self);
    assert (fd);
    *fd = -1;
    int need = s_sync_needed (self);
    if (need <= 0)
        return need;
    *fd = dup (self->active_fd);
    if (*fd < 0) {
        log_error ("store_sync_failed", "dir=%s seg=%" PRIu32 " errno=\"%s\" op=dup",
                   self->dir, self->active, strerror (errno));
        return -1;
    }
    return 0;
}

void
store_sync_end (store_t *self, bool ok)
{
    assert (self);
    if (ok) {
        self->dirty = false;
        return;
    }
    //  As in store_sync: the kernel may have dropped the dirty pages, so
    //  nothing more goes into that file.
    if (self->active_fd >= 0) {
        close (self->active_fd);
        self->active_fd = -1;
    }
}

static int
s_cmp_u32 (const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
    return x < y ? -1 : x > y;
}

int
store_segments (store_t *self, uint32_t *ids, int max)
{
    assert (self && ids);
    DIR *d = s_opendir (self);
    if (!d) {
        log_error ("store_list_failed", "dir=%s errno=\"%s\"", self->dir, strerror (errno));
        return -1;
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir (d)) && n < max) {
        uint32_t seg;
        if (s_parse_segment_name (e->d_name, &seg))
            ids [n++] = seg;
    }
    closedir (d);
    qsort (ids, (size_t) n, sizeof *ids, s_cmp_u32);
    return n;
}

int64_t
store_segment_size (store_t *self, uint32_t seg, int64_t *age_s)
{
    char name [32];
    s_segment_name (self, seg, name, sizeof name);
    struct stat st;
    if (fstatat (self->dir_fd, name, &st, 0))
        return -1;
    if (age_s)
        *age_s = (int64_t) time (NULL) - (int64_t) st.st_mtime;
    return (int64_t) st.st_size;
}

uint32_t
store_active (store_t *self)
{
    return self->active;
}

int
store_drop (store_t *self, uint32_t seg)
{
    assert (self);
    assert (seg != self->active || self->active_fd < 0);
    char name [32];
    s_segment_name (self, seg, name, sizeof name);
    if (self->n_pool < STORE_POOL) {
        char pooled [32];
        snprintf (pooled, sizeof pooled, "pool-%08" PRIx32 ".pbts", self->pool_seq);
        if (renameat (self->dir_fd, name, self->dir_fd, pooled) == 0) {
            self->pool [self->n_pool++] = self->pool_seq++;
            self->dropped++;
            return 0;
        }
        if (errno == ENOENT)
            return 0;
    }
    if (unlinkat (self->dir_fd, name, 0) && errno != ENOENT) {
        log_error ("store_drop_failed", "dir=%s seg=%" PRIu32 " errno=\"%s\"", self->dir, seg,
                   strerror (errno));
        return -1;
    }
    self->dropped++;
    return 0;
}

uint64_t
store_segment_bytes (store_t *self)
{
    uint32_t *ids = malloc (STORE_MAX_SEGMENTS * sizeof *ids);
    int n = ids ? store_segments (self, ids, STORE_MAX_SEGMENTS) : -1;
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        int64_t size = store_segment_size (self, ids [i], NULL);
        if (size > 0)
            total += (uint64_t) size;
    }
    free (ids);
    return total;
}

uint64_t
store_bytes (store_t *self)
{
    //  Every file: live segments and the pool kept for reuse.
    DIR *d = s_opendir (self);
    if (!d)
        return 0;
    uint64_t total = 0;
    struct dirent *e;
    while ((e = readdir (d))) {
        struct stat st;
        if (e->d_name [0] != '.' && fstatat (self->dir_fd, e->d_name, &st, 0) == 0
        &&  S_ISREG (st.st_mode))
            total += (uint64_t) st.st_size;
    }
    closedir (d);
    return total;
}

void
store_set_segment_bytes (store_t *self, uint64_t segment_bytes)
{
    assert (segment_bytes >= STORE_HEADER_BYTES);
    self->segment_bytes = segment_bytes;
}

uint64_t
store_dropped (store_t *self)
{
    return self->dropped;
}

uint64_t
store_started (store_t *self)
{
    return self->started;
}
