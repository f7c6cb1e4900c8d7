#include "shm/segment.h"

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Page 0: header, then the two control blocks; the data areas follow. */
#define SEG_CTL_OFF 1024u
#define SEG_DATA_OFF 4096u
#define SEG_DATA_ALIGN 64u

_Static_assert(sizeof(struct shm_seg_hdr) <= SEG_CTL_OFF, "header fits before the ctl blocks");
_Static_assert(SEG_CTL_OFF + SHM_SEG_NRINGS * sizeof(struct shm_ring_ctl) <= SEG_DATA_OFF,
	       "ctl blocks fit in page 0");

struct shm_seg {
	void *base;
	size_t size;
	int fd;          /* creator only, else -1 */
	char *name;      /* creator of a named segment only */
	struct shm_seg_hdr hdr;
};

struct region {
	uint64_t off, len;
};

static bool region_inside(struct region g, uint64_t size)
{
	return g.off <= size && g.len <= size - g.off;
}

static bool regions_overlap(struct region a, struct region b)
{
	return a.off < b.off + b.len && b.off < a.off + a.len;
}

/* Every field a peer could have written is checked here, against the size
 * of the file we mapped, before anything derives a pointer from it. */
static int validate(const struct shm_seg_hdr *h, uint64_t file_size)
{
	struct region reg[1 + 2 * SHM_SEG_NRINGS];
	unsigned n = 0;

	if (h->magic != SHM_SEG_MAGIC)
		return -EBADMSG;
	if (h->version != SHM_SEG_VERSION)
		return -EPROTO;
	if (h->hdr_size != sizeof(*h) || h->seg_size != file_size || h->flags != 0)
		return -EBADMSG;
	reg[n++] = (struct region){ 0, h->hdr_size };
	for (unsigned i = 0; i < SHM_SEG_NRINGS; i++) {
		const struct shm_seg_ring_desc *d = &h->ring[i];

		if (!shm_ring_capacity_ok(d->capacity) || d->ctl_off % SHM_CACHELINE ||
		    d->data_off % SEG_DATA_ALIGN)
			return -EBADMSG;
		reg[n++] = (struct region){ d->ctl_off, sizeof(struct shm_ring_ctl) };
		reg[n++] = (struct region){ d->data_off, d->capacity };
	}
	for (unsigned i = 0; i < n; i++) {
		if (!region_inside(reg[i], h->seg_size))
			return -EBADMSG;
		for (unsigned j = 0; j < i; j++)
			if (regions_overlap(reg[i], reg[j]))
				return -EBADMSG;
	}
	return 0;
}

static int map_fd(int fd, size_t size, void **base)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED)
		return -errno;
	*base = p;
	return 0;
}

static int check_opts(const struct shm_seg_opts *o, uint64_t *size)
{
	if ((o->mode & ~(mode_t)0660) || (o->mode & 0600) != 0600)
		return -EINVAL;
	*size = SEG_DATA_OFF;
	for (unsigned i = 0; i < SHM_SEG_NRINGS; i++) {
		if (!shm_ring_capacity_ok(o->capacity[i]))
			return -EINVAL;
		*size += o->capacity[i];
	}
	return 0;
}

/* Sizes, permissions, maps and formats a fresh fd; on success s owns fd. */
static int init_created(int fd, const struct shm_seg_opts *o, uint64_t size, struct shm_seg **out)
{
	struct shm_seg *s;
	struct shm_seg_hdr *h;
	uint64_t data_off = SEG_DATA_OFF;
	int err;

	/* fchmod: the mode given to shm_open is filtered by the umask. */
	if (ftruncate(fd, (off_t)size) < 0 || fchmod(fd, o->mode) < 0 ||
	    (o->gid != (gid_t)-1 && fchown(fd, (uid_t)-1, o->gid) < 0))
		return -errno;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	err = map_fd(fd, size, &s->base);
	if (err) {
		free(s);
		return err;
	}
	s->size = size;
	s->fd = fd;
	h = s->base;
	h->magic = SHM_SEG_MAGIC;
	h->version = SHM_SEG_VERSION;
	h->hdr_size = sizeof(*h);
	h->seg_size = size;
	h->gateway_pid = (uint32_t)getpid();
	h->flags = 0;
	for (unsigned i = 0; i < SHM_SEG_NRINGS; i++) {
		h->ring[i].ctl_off = SEG_CTL_OFF + i * sizeof(struct shm_ring_ctl);
		h->ring[i].data_off = data_off;
		h->ring[i].capacity = o->capacity[i];
		data_off += o->capacity[i];
		shm_ring_format((void *)((char *)s->base + h->ring[i].ctl_off), 0);
	}
	s->hdr = *h;
	*out = s;
	return 0;
}

int shm_seg_create_memfd(const char *name, const struct shm_seg_opts *o, struct shm_seg **out)
{
	uint64_t size;
	int fd, err = check_opts(o, &size);

	if (err)
		return err;
	fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	err = init_created(fd, o, size, out);
	if (!err && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		err = -errno;
		shm_seg_close(*out);
		return err;
	}
	if (err)
		close(fd);
	return err;
}

int shm_seg_create_named(const char *name, const struct shm_seg_opts *o, struct shm_seg **out)
{
	uint64_t size;
	char *copy;
	int fd, err = check_opts(o, &size);

	if (err)
		return err;
	copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, o->mode);
	if (fd < 0) {
		err = -errno;
		free(copy);
		return err;
	}
	err = init_created(fd, o, size, out);
	if (err) {
		close(fd);
		shm_unlink(name);
		free(copy);
		return err;
	}
	(*out)->name = copy;
	return 0;
}

int shm_seg_attach_fd(int fd, struct shm_seg **out)
{
	struct shm_seg *s;
	struct stat st;
	int err;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_size < SEG_DATA_OFF)
		return -EBADMSG;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->fd = -1;
	s->size = (size_t)st.st_size;
	err = map_fd(fd, s->size, &s->base);
	if (err)
		goto fail_free;
	/* One copy, validated, then used for good: the peer may keep writing
	 * the shared header after we checked it. */
	memcpy(&s->hdr, s->base, sizeof(s->hdr));
	err = validate(&s->hdr, (uint64_t)st.st_size);
	if (err)
		goto fail_unmap;
	for (unsigned i = 0; i < SHM_SEG_NRINGS; i++) {
		struct shm_ring probe;

		err = shm_seg_ring(s, (enum shm_seg_dir)i, SHM_RING_CONSUMER, &probe);
		if (err)
			goto fail_unmap;
	}
	*out = s;
	return 0;

fail_unmap:
	munmap(s->base, s->size);
fail_free:
	free(s);
	return err;
}

int shm_seg_adopt_fd(int fd, struct shm_seg **out)
{
	int err = shm_seg_attach_fd(fd, out);

	if (err == 0)
		(*out)->fd = fd;
	return err;
}

void shm_seg_set_gateway_pid(struct shm_seg *s, uint32_t pid)
{
	s->hdr.gateway_pid = pid;
	atomic_store_explicit((_Atomic uint32_t *)((char *)s->base + offsetof(struct shm_seg_hdr, gateway_pid)),
			      pid, memory_order_release);
}

uint32_t shm_seg_gateway_pid(const struct shm_seg *s)
{
	/* Pairs with the release-store of shm_seg_set_gateway_pid in the gateway that
	 * took the segment over. */
	return atomic_load_explicit((_Atomic uint32_t *)((char *)s->base + offsetof(struct shm_seg_hdr, gateway_pid)),
				    memory_order_acquire);
}

int shm_seg_attach_named(const char *name, struct shm_seg **out)
{
	int err, fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	err = shm_seg_attach_fd(fd, out);
	close(fd);
	return err;
}

void shm_seg_close(struct shm_seg *s)
{
	if (!s)
		return;
	munmap(s->base, s->size);
	if (s->fd >= 0)
		close(s->fd);
	if (s->name) {
		shm_unlink(s->name);
		free(s->name);
	}
	free(s);
}

int shm_seg_fd(const struct shm_seg *s)
{
	return s->fd;
}

const struct shm_seg_hdr *shm_seg_header(const struct shm_seg *s)
{
	return &s->hdr;
}

void *shm_seg_base(const struct shm_seg *s)
{
	return s->base;
}

int shm_seg_ring(struct shm_seg *s, enum shm_seg_dir dir, enum shm_ring_role role,
		 struct shm_ring *r)
{
	const struct shm_seg_ring_desc *d;
	int err;

	if ((unsigned)dir >= SHM_SEG_NRINGS)
		return -EINVAL;
	d = &s->hdr.ring[dir];
	err = shm_ring_open(r, (void *)((char *)s->base + d->ctl_off),
			    (char *)s->base + d->data_off, d->capacity, role);
	/* The layout was validated, so -EINVAL cannot come from it. */
	return err == -EINVAL ? -EBADMSG : err;
}
