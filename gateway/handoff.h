/*
 * call_rcu hands memory to liburcu's thread through futexes in a library that
 * ThreadSanitizer cannot see: say so where the hand-off happens (release before
 * call_rcu, acquire in the callback), or every free or reuse of that memory looks like a
 * race. Nothing in a normal build.
 */
#ifndef WSGW_HANDOFF_H
#define WSGW_HANDOFF_H

#if defined(__SANITIZE_THREAD__)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define HANDOFF_RELEASE(p) __tsan_release(p)
#define HANDOFF_ACQUIRE(p) __tsan_acquire(p)
#else
#define HANDOFF_RELEASE(p) ((void)(p))
#define HANDOFF_ACQUIRE(p) ((void)(p))
#endif

#endif
