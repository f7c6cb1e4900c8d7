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
	char name[64];
	int creator;
};

static int map_fd(int fd, struct bell_page **out)
{
	void *p = mmap(NULL, BELL_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	*out = p;
	return 0;
}

int shm_bell_create(const char *name, mode_t mode, gid_t gid, struct shm_bell **out)
{
	if (strlen(name) >= sizeof(((struct shm_bell *)0)->name))
		return -EINVAL;
	struct shm_bell *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	int rc;
	int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		rc = -errno;
		goto fail;
	}
	/* shm_open applies the umask; the mode asked for is the contract. */
	if (fchmod(fd, mode) < 0 || (gid != (gid_t)-1 && fchown(fd, (uid_t)-1, gid) < 0) ||
	    ftruncate(fd, BELL_SIZE) < 0) {
		rc = -errno;
		goto fail_unlink;
	}
	rc = map_fd(fd, &b->page);
	if (rc)
		goto fail_unlink;
	close(fd);
	memset(b->page, 0, sizeof(*b->page));
	b->page->version = 1;
	b->page->size = BELL_SIZE;
	b->page->magic = BELL_MAGIC; /* workers map it only after WELCOME names it */
	strcpy(b->name, name);
	b->creator = 1;
	*out = b;
	return 0;
fail_unlink:
	close(fd);
	shm_unlink(name);
fail:
	free(b);
	return rc;
}

int shm_bell_attach(const char *name, struct shm_bell **out)
{
	int fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct stat st;
	int rc = fstat(fd, &st) < 0 ? -errno : 0;
	if (rc == 0 && st.st_size != BELL_SIZE)
		rc = -EBADMSG;
	struct bell_page *page = NULL;
	if (rc == 0)
		rc = map_fd(fd, &page);
	close(fd);
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
	*out = b;
	return 0;
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
	if (b->creator)
		shm_unlink(b->name);
	free(b);
}
