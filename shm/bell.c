#include "shm/bell.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define BELL_MAGIC 0x4c4c454257475357ull /* "WSGWBELL" little-endian */
#define BELL_SIZE 4096

struct bell_page {
	uint64_t magic;
	uint32_t version;
	uint32_t size;
	struct shm_doorbell db;
};

_Static_assert(sizeof(struct bell_page) <= BELL_SIZE, "bell page fits a page");

struct shm_bell {
	struct bell_page *page;
	int fd; /* the creator's memfd, else -1 */
};

static int map_fd(int fd, struct bell_page **out)
{
	void *p = mmap(NULL, BELL_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	*out = p;
	return 0;
}

int shm_bell_create(struct shm_bell **out)
{
	struct shm_bell *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	int rc = 0;
	b->fd = memfd_create("wsgw-bell", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (b->fd < 0 || ftruncate(b->fd, BELL_SIZE) < 0 ||
	    fcntl(b->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		rc = -errno;
	if (rc == 0)
		rc = map_fd(b->fd, &b->page);
	if (rc) {
		if (b->fd >= 0)
			close(b->fd);
		free(b);
		return rc;
	}
	memset(b->page, 0, sizeof(*b->page));
	b->page->version = 1;
	b->page->size = BELL_SIZE;
	b->page->magic = BELL_MAGIC;
	*out = b;
	return 0;
}

int shm_bell_attach_fd(int fd, struct shm_bell **out)
{
	struct stat st;
	int rc = fstat(fd, &st) < 0 ? -errno : 0;
	if (rc == 0 && st.st_size != BELL_SIZE)
		rc = -EBADMSG;
	struct bell_page *page = NULL;
	if (rc == 0)
		rc = map_fd(fd, &page);
	if (rc)
		return rc;
	if (page->magic != BELL_MAGIC || page->version != 1 || page->size != BELL_SIZE) {
		munmap(page, BELL_SIZE);
		return -EBADMSG;
	}
	struct shm_bell *b = calloc(1, sizeof(*b));
	if (!b) {
		munmap(page, BELL_SIZE);
		return -ENOMEM;
	}
	b->page = page;
	b->fd = -1;
	*out = b;
	return 0;
}

int shm_bell_adopt_fd(int fd, struct shm_bell **out)
{
	int rc = shm_bell_attach_fd(fd, out);
	if (rc == 0)
		(*out)->fd = fd;
	return rc;
}

int shm_bell_fd(const struct shm_bell *b)
{
	return b->fd;
}

struct shm_doorbell *shm_bell_doorbell(struct shm_bell *b)
{
	return &b->page->db;
}

void shm_bell_close(struct shm_bell *b)
{
	if (!b)
		return;
	munmap(b->page, BELL_SIZE);
	if (b->fd >= 0)
		close(b->fd);
	free(b);
}
