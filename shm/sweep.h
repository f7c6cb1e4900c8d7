/* Segments left behind by a gateway that did not clean up (kill -9). */
#ifndef WSGW_SHM_SWEEP_H
#define WSGW_SHM_SWEEP_H

/* Removes /dev/shm/wsgw-<pid>-* for every pid that no longer exists, logging each through
 * log (which may be NULL). Returns how many were removed. */
int shm_sweep_stale(void (*log)(const char *name, long pid));

#endif
