/*
 * shm/segment.c (shm_seg_attach_fd): a segment whose header, ring descriptors and
 * indexes someone else wrote, in a real memfd. The attaching side is a worker (libwsgw)
 * handed the segment's fd; nothing in the file may make it touch memory outside it.
 *
 * Input: [file size u32, at most 1 MiB][record lengths, 8 x u16] then patches, each
 * [offset u32][n u8][n bytes], written into the zero-filled file (a patch list reaches
 * the header at 0 and the control blocks past 1 KiB without megabytes of input).
 * The verdict must be the one the layout rules of docs/SHM.md give, computed here
 * independently. An accepted segment must yield both rings in the roles libwsgw opens
 * them: it consumes the to-worker ring (every record inside its data area) and produces
 * into the to-gateway ring (every reservation inside its data area); when that ring
 * started empty, the gateway's reading of it gives exactly what was pushed.
 */
#include "shm/segment.h"
#include "tests/fuzz/fuzz.h"

#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_FILE (1u << 20)
#define PUSHES 8

static int fd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* One memfd for every run: creating one per input would cost a syscall and an fd
	   for nothing; ftruncate to 0 and back zeroes it. */
	fd = memfd_create("fuzz-segment", MFD_CLOEXEC);
	FUZZ_CHECK(fd >= 0);
	return 0;
}

static bool pread_all(void *p, size_t n, uint64_t off)
{
	return pread(fd, p, n, (off_t)off) == (ssize_t)n;
}

/* The verdict docs/SHM.md's rules give for the file as it is now. */
static int ref_verdict(uint64_t size)
{
	struct shm_seg_hdr h;
	uint64_t off[5], len[5];
	unsigned n = 0;

	if (size < 4096 || !pread_all(&h, sizeof(h), 0))
		return -EBADMSG;
	if (h.magic != SHM_SEG_MAGIC)
		return -EBADMSG;
	if (h.version != SHM_SEG_VERSION)
		return -EPROTO;
	if (h.hdr_size != sizeof(h) || h.seg_size != size || h.flags)
		return -EBADMSG;
	off[n] = 0, len[n++] = sizeof(h);
	for (int i = 0; i < SHM_SEG_NRINGS; i++) {
		uint64_t c = h.ring[i].capacity;

		if (c < 64 || c > (1u << 30) || (c & (c - 1)) || h.ring[i].ctl_off % 128 ||
		    h.ring[i].data_off % 64)
			return -EBADMSG;
		off[n] = h.ring[i].ctl_off, len[n++] = sizeof(struct shm_ring_ctl);
		off[n] = h.ring[i].data_off, len[n++] = c;
	}
	for (unsigned i = 0; i < n; i++) {
		if (off[i] > size || len[i] > size - off[i])
			return -EBADMSG;
		for (unsigned j = 0; j < i; j++)
			if (off[i] < off[j] + len[j] && off[j] < off[i] + len[i])
				return -EBADMSG;
	}
	for (int i = 0; i < SHM_SEG_NRINGS; i++) {
		uint64_t head, tail;

		FUZZ_CHECK(pread_all(&head, 8, h.ring[i].ctl_off) &&
			   pread_all(&tail, 8, h.ring[i].ctl_off + SHM_CACHELINE));
		if (head - tail > h.ring[i].capacity || ((head | tail) & 7))
			return -EBADMSG;
	}
	return 0;
}

static bool inside(const void *p, size_t n, const uint8_t *base, uint64_t size)
{
	const uint8_t *q = p;

	return q >= base && q <= base + size && n <= (size_t)(base + size - q);
}

/* The worker's poll of its ring (libwsgw's loop). */
static void consume(struct shm_seg *s)
{
	const struct shm_seg_ring_desc *d = &shm_seg_header(s)->ring[SHM_SEG_TO_WORKER];
	const uint8_t *area = (const uint8_t *)shm_seg_base(s) + d->data_off;
	struct shm_ring r;
	struct shm_ring_iter it;
	struct shm_rec rec;
	int n, rc;

	FUZZ_CHECK(shm_seg_ring(s, SHM_SEG_TO_WORKER, SHM_RING_CONSUMER, &r) == 0);
	n = shm_ring_peek(&r, &it);
	FUZZ_CHECK(n >= 0 && (uint64_t)n <= d->capacity);
	while ((rc = shm_ring_next(&it, &rec)) == 1) {
		FUZZ_CHECK(inside(rec.payload, rec.len, area, d->capacity));
		FUZZ_CHECK(rec.len <= shm_ring_max_payload(&r));
	}
	FUZZ_CHECK(rc == 0 || rc == -EBADMSG);
	shm_ring_release(&r, &it);
}

/* The worker's commands; read back as the gateway would when the ring held nothing
   before. */
static void produce(struct shm_seg *s, const uint16_t *lens)
{
	const struct shm_seg_ring_desc *d = &shm_seg_header(s)->ring[SHM_SEG_TO_GATEWAY];
	uint8_t *area = (uint8_t *)shm_seg_base(s) + d->data_off;
	struct shm_ring_ctl *ctl = (void *)((uint8_t *)shm_seg_base(s) + d->ctl_off);
	bool empty = atomic_load(&ctl->head) == atomic_load(&ctl->tail);
	struct shm_ring w, back;
	struct shm_ring_iter it;
	struct shm_rec rec;
	uint32_t pushed[PUSHES];
	int np = 0;

	FUZZ_CHECK(shm_seg_ring(s, SHM_SEG_TO_GATEWAY, SHM_RING_PRODUCER, &w) == 0);
	for (int i = 0; i < PUSHES; i++) {
		uint32_t len = lens[i] % (shm_ring_max_payload(&w) + 2);
		void *p;
		int rc = shm_ring_reserve(&w, len, &p);

		if (len > shm_ring_max_payload(&w)) {
			FUZZ_CHECK(rc == -EMSGSIZE);
			continue;
		}
		FUZZ_CHECK(rc == 0 || rc == -ENOBUFS);
		if (rc)
			break;
		FUZZ_CHECK(inside(p, len, area, d->capacity));
		FUZZ_CHECK(((uint8_t *)p - area) % 8 == 0);
		memset(p, i + 1, len);
		shm_ring_commit(&w, (uint16_t)(i + 1), 0, (uint64_t)i << 32 | len, len);
		pushed[np++] = len;
	}
	shm_ring_notify(&w);
	if (!empty)
		return;
	FUZZ_CHECK(shm_seg_ring(s, SHM_SEG_TO_GATEWAY, SHM_RING_CONSUMER, &back) == 0);
	FUZZ_CHECK(shm_ring_peek(&back, &it) >= 0);
	for (int i = 0; i < np; i++) {
		FUZZ_CHECK(shm_ring_next(&it, &rec) == 1);
		FUZZ_CHECK(rec.len == pushed[i] && (uint32_t)rec.conn == pushed[i]);
		FUZZ_CHECK(inside(rec.payload, rec.len, area, d->capacity));
		for (uint32_t j = 0; j < rec.len; j++)
			FUZZ_CHECK(((const uint8_t *)rec.payload)[j] == rec.type);
	}
	FUZZ_CHECK(shm_ring_next(&it, &rec) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	uint64_t fsize = fuzz_le(&in, 4) % (MAX_FILE + 1);
	uint16_t lens[PUSHES];
	struct shm_seg *s = NULL;
	int rc, want;

	for (int i = 0; i < PUSHES; i++)
		lens[i] = (uint16_t)fuzz_le(&in, 2);
	FUZZ_CHECK(ftruncate(fd, 0) == 0 && ftruncate(fd, (off_t)fsize) == 0);
	while (in.n && fsize) {
		uint64_t off = fuzz_le(&in, 4) % fsize;
		size_t n = fuzz_u8(&in);

		if (n > in.n)
			n = in.n;
		if (n > fsize - off)
			n = fsize - off;
		FUZZ_CHECK(pwrite(fd, in.p, n, (off_t)off) == (ssize_t)n);
		in.p += n;
		in.n -= n;
	}
	want = ref_verdict(fsize);
	rc = shm_seg_attach_fd(fd, &s);
	FUZZ_CHECK(rc == want);
	if (rc)
		return 0;
	FUZZ_CHECK(shm_seg_fd(s) == -1); /* an attached segment owns no fd */
	FUZZ_CHECK(shm_seg_header(s)->seg_size == fsize);
	struct shm_ring bad;
	FUZZ_CHECK(shm_seg_ring(s, SHM_SEG_NRINGS, SHM_RING_CONSUMER, &bad) == -EINVAL);
	consume(s);
	produce(s, lens);
	shm_seg_close(s);
	return 0;
}
