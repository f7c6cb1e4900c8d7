#include "gateway/supervise.h"
#include "gateway/log.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

/* A run at least this long was no quick death: the next restart waits `backoff` again. */
#define STABLE_MS 10000
#define MAX_PROGS (2 * CFG_MAX_WORKERS) /* the configured ones and those stopping after a reload */
#define MAX_INST 64

extern char **environ;

enum inst_state { I_IDLE, I_WAITING, I_RUNNING };

struct inst {
	struct loop_src src;   /* the pidfd */
	struct prog *prog;
	unsigned idx;
	uint8_t state;         /* enum inst_state */
	uint8_t retire;        /* stopping for good: never restarted */
	pid_t pid;
	int pidfd;
	uint32_t started, restart_at;
	unsigned delay_ms, restarts;
	int last_status;
};

struct prog {
	struct sup *sup;
	int used;
	int configured;        /* in the settings in force */
	struct cfg_worker w;
	unsigned n;            /* instances wanted */
	struct inst inst[MAX_INST];
};

struct sup {
	struct loop *loop;
	const struct gw_config *cfg;
	int started, stopping;
	struct prog progs[MAX_PROGS];
};

static void on_exit_fd(struct loop_src *src, uint32_t events);
static void retire(struct prog *p, unsigned from);

static unsigned running_of(const struct prog *p)
{
	unsigned n = 0;
	for (unsigned i = 0; i < MAX_INST; i++)
		n += p->inst[i].state == I_RUNNING;
	return n;
}

unsigned sup_running(const struct sup *s)
{
	unsigned n = 0;
	for (int i = 0; s && i < MAX_PROGS; i++)
		if (s->progs[i].used)
			n += running_of(&s->progs[i]);
	return n;
}

/* The environment of a worker: the gateway's, with WSGW_* set for it. Built before the
 * fork: nothing after it may allocate. */
static char **child_env(const struct sup *s, const struct prog *p, unsigned idx, char *store, size_t cap)
{
	size_t n = 0;
	while (environ[n])
		n++;
	char **env = calloc(n + 5, sizeof(*env));
	if (!env)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "WSGW_CONTROL=", 13) && strncmp(environ[i], "WSGW_POOL=", 10) &&
		    strncmp(environ[i], "WSGW_INSTANCE=", 14) && strncmp(environ[i], "WSGW_WORKER=", 12))
			env[k++] = environ[i];
	int a = snprintf(store, cap, "WSGW_CONTROL=%s", s->cfg->control) + 1;
	int b = snprintf(store + a, cap - (size_t)a, "WSGW_POOL=%s", p->w.pool) + 1;
	int c = snprintf(store + a + b, cap - (size_t)(a + b), "WSGW_INSTANCE=%u", idx) + 1;
	snprintf(store + a + b + c, cap - (size_t)(a + b + c), "WSGW_WORKER=%s", p->w.name);
	env[k++] = store;
	env[k++] = store + a;
	env[k++] = store + a + b;
	env[k++] = store + a + b + c;
	env[k] = NULL;
	return env;
}

static void plan_restart(struct inst *in, uint32_t now)
{
	in->state = I_WAITING;
	in->restart_at = now + in->delay_ms;
}

static int spawn(struct sup *s, struct inst *in)
{
	struct prog *p = in->prog;
	uint32_t now = loop_now(s->loop);
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1, groups[64];
	int ngroups = 64;
	if (p->w.user[0]) {
		struct passwd *pw = getpwnam(p->w.user);
		if (!pw) {
			log_error(0, "worker %s[%u]: user %s does not exist: not started", p->w.name, in->idx, p->w.user);
			return -ENOENT;
		}
		if (geteuid() != 0 && pw->pw_uid != geteuid()) {
			log_error(EPERM, "worker %s[%u]: only a gateway run as root can start it as user %s",
				  p->w.name, in->idx, p->w.user);
			return -EPERM;
		}
		uid = pw->pw_uid;
		gid = pw->pw_gid;
		if (getgrouplist(p->w.user, gid, groups, &ngroups) < 0)
			ngroups = 0;
	}
	char store[512 + CFG_PATH_MAX], cmd[1100];
	char **env = child_env(s, p, in->idx, store, sizeof(store));
	snprintf(cmd, sizeof(cmd), "exec %s", p->w.command);
	if (!env)
		return -ENOMEM;
	pid_t pid = fork();
	if (pid < 0) {
		int err = errno;
		free(env);
		log_error(err, "worker %s[%u]: fork", p->w.name, in->idx);
		return -err;
	}
	if (pid == 0) {
		/* The child: only async-signal-safe calls until exec. The gateway blocks the
		 * signals it takes through its signalfd; a worker must get them. */
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (uid != (uid_t)-1 && (setgroups((size_t)ngroups, groups) || setgid(gid) || setuid(uid)))
			_exit(126);
		close_range(3, ~0U, 0);
		char *argv[] = { "/bin/sh", "-c", cmd, NULL };
		execve("/bin/sh", argv, env);
		_exit(127);
	}
	free(env);
	in->pid = pid;
	in->pidfd = pidfd_open(pid, 0);
	in->started = now;
	in->state = I_RUNNING;
	in->src.fn = on_exit_fd;
	if (in->pidfd < 0 || loop_add(s->loop, in->pidfd, EPOLLIN, &in->src)) {
		/* Without a pidfd its exit would go unseen: it is not left running unwatched. */
		log_error(errno, "worker %s[%u]: pidfd_open(%d)", p->w.name, in->idx, (int)pid);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		if (in->pidfd >= 0)
			close(in->pidfd);
		in->pidfd = -1;
		in->pid = 0;
		in->state = I_IDLE;
		return -EIO;
	}
	log_info("worker %s[%u] started (pid %d, pool %s): %s", p->w.name, in->idx, (int)pid, p->w.pool,
		 p->w.command);
	return 0;
}

static void start_inst(struct sup *s, struct inst *in)
{
	if (spawn(s, in)) {
		/* Could not start (no user, no memory): tried again later, as after a death. */
		in->delay_ms = in->delay_ms ? in->delay_ms : in->prog->w.backoff_ms;
		plan_restart(in, loop_now(s->loop));
	}
}

static void describe(int st, char *out, size_t cap)
{
	if (WIFEXITED(st))
		snprintf(out, cap, "exited with status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(out, cap, "was killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
	else
		snprintf(out, cap, "ended (status 0x%x)", st);
}

/* The instance's process ended: reaped by its own pid, then restarted or not. */
static void on_exit_fd(struct loop_src *src, uint32_t events)
{
	struct inst *in = (struct inst *)src;
	struct prog *p = in->prog;
	struct sup *s = p->sup;
	(void)events;
	/* By the pidfd, never the pid: a number that was reused cannot be reaped by mistake. */
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	int st = -1;
	if (waitid(P_PIDFD, (id_t)in->pidfd, &si, WEXITED | WNOHANG) == 0) {
		if (!si.si_pid)
			return; /* not yet */
		st = si.si_code == CLD_EXITED ? W_EXITCODE(si.si_status, 0)
					       : (si.si_status & 0x7f) | (si.si_code == CLD_DUMPED ? WCOREFLAG : 0);
	} else if (errno != ECHILD) {
		log_warn(errno, "worker %s[%u]: waitid(pid %d)", p->w.name, in->idx, (int)in->pid);
	} /* ECHILD: adopted, its parent (the replaced gateway) has its status */
	pid_t r = in->pid;
	uint32_t now = loop_now(s->loop);
	uint32_t ran = now - in->started;
	char how[96];
	if (st < 0)
		snprintf(how, sizeof(how), "ended (status unknown: the gateway this one replaced started it)");
	else
		describe(st, how, sizeof(how));
	loop_del(s->loop, in->pidfd);
	close(in->pidfd);
	in->pidfd = -1;
	in->pid = 0;
	in->last_status = st;
	in->state = I_IDLE;
	int clean = st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
	if (s->stopping || in->retire || !p->configured || in->idx >= p->n ||
	    (p->w.restart == CFG_RESTART_ON_FAILURE && clean)) {
		log_info("worker %s[%u] %s after %u ms%s", p->w.name, in->idx, how, ran,
			 s->stopping || in->retire || !p->configured || in->idx >= p->n ? ""
			 : "; not restarted (restart = on-failure)");
		in->retire = 0;
		return;
	}
	/* Each quick death doubles the wait; a run that lasted resets it. */
	if (!in->delay_ms || ran >= STABLE_MS)
		in->delay_ms = p->w.backoff_ms;
	else
		in->delay_ms = in->delay_ms * 2 > p->w.backoff_max_ms ? p->w.backoff_max_ms : in->delay_ms * 2;
	in->restarts++;
	plan_restart(in, now);
	log_warn(0, "worker %s[%u] (pid %d) %s after %u ms; restarting in %u ms (restart %u)", p->w.name,
		 in->idx, (int)r, how, ran, in->delay_ms, in->restarts);
}

static int hook_poll(void *arg)
{
	struct sup *s = arg;
	if (s->stopping || !s->started)
		return 0;
	uint32_t now = loop_now(s->loop);
	for (int i = 0; i < MAX_PROGS; i++) {
		struct prog *p = &s->progs[i];
		if (!p->used || !p->configured)
			continue;
		for (unsigned k = 0; k < p->n; k++) {
			struct inst *in = &p->inst[k];
			if (in->state == I_WAITING && (int32_t)(now - in->restart_at) >= 0)
				start_inst(s, in);
		}
	}
	return 0;
}

static int hook_timeout(void *arg)
{
	struct sup *s = arg;
	int best = -1;
	if (s->stopping || !s->started)
		return -1;
	uint32_t now = loop_now(s->loop);
	for (int i = 0; i < MAX_PROGS; i++)
		for (unsigned k = 0; s->progs[i].used && k < s->progs[i].n; k++) {
			const struct inst *in = &s->progs[i].inst[k];
			if (in->state != I_WAITING)
				continue;
			int32_t left = (int32_t)(in->restart_at - now);
			left = left < 0 ? 0 : left;
			if (best < 0 || left < best)
				best = left;
		}
	return best;
}

static void prog_init(struct sup *s, struct prog *p, const struct cfg_worker *w)
{
	memset(p, 0, sizeof(*p));
	p->sup = s;
	p->used = 1;
	p->configured = 1;
	p->w = *w;
	p->n = w->instances;
	for (unsigned i = 0; i < MAX_INST; i++) {
		p->inst[i].prog = p;
		p->inst[i].idx = i;
		p->inst[i].pidfd = -1;
		p->inst[i].last_status = -1;
	}
}

int sup_new(struct loop *l, const struct gw_config *cfg, struct sup **out)
{
	struct sup *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->loop = l;
	s->cfg = cfg;
	for (int i = 0; i < cfg->n_workers; i++)
		prog_init(s, &s->progs[i], &cfg->workers[i]);
	struct loop_hooks h = { .arg = s, .poll = hook_poll, .timeout_ms = hook_timeout };
	int rc = loop_add_hooks(l, &h);
	if (rc) {
		free(s);
		return rc;
	}
	*out = s;
	return 0;
}

void sup_start(struct sup *s)
{
	s->started = 1;
	/* Taken over in a live upgrade but not in this configuration (the program, or that
	 * many instances): stopped, as a reload that removed them would. */
	for (int i = 0; i < MAX_PROGS; i++) {
		struct prog *p = &s->progs[i];
		unsigned keep = p->configured ? p->n : 0, extra = 0;
		for (unsigned k = keep; p->used && k < MAX_INST; k++)
			extra += p->inst[k].state == I_RUNNING;
		if (extra) {
			log_info("worker %s: %u instances taken over that this configuration does not have: stopping them",
				 p->w.name, extra);
			retire(p, keep);
		}
	}
	for (int i = 0; i < MAX_PROGS; i++)
		for (unsigned k = 0; s->progs[i].used && k < s->progs[i].n; k++)
			if (s->progs[i].inst[k].state == I_IDLE)
				start_inst(s, &s->progs[i].inst[k]);
}

static void term(struct inst *in, int sig)
{
	if (in->state == I_RUNNING && in->pidfd >= 0 && pidfd_send_signal(in->pidfd, sig, NULL, 0) < 0 &&
	    errno != ESRCH)
		log_warn(errno, "worker %s[%u]: signal %d to pid %d", in->prog->w.name, in->idx, sig, (int)in->pid);
}

/* Stops the instances from idx on, for good. */
static void retire(struct prog *p, unsigned from)
{
	for (unsigned k = from; k < MAX_INST; k++) {
		struct inst *in = &p->inst[k];
		if (in->state == I_WAITING)
			in->state = I_IDLE;
		if (in->state == I_RUNNING) {
			in->retire = 1;
			term(in, SIGTERM);
		}
	}
}

static int same_program(const struct cfg_worker *a, const struct cfg_worker *b)
{
	return !strcmp(a->command, b->command) && !strcmp(a->pool, b->pool) &&
	       !strcmp(a->user, b->user);
}

void sup_reload(struct sup *s)
{
	const struct gw_config *cfg = s->cfg;
	for (int i = 0; i < MAX_PROGS; i++)
		s->progs[i].configured = 0;
	for (int w = 0; w < cfg->n_workers; w++) {
		struct prog *p = NULL, *spare = NULL;
		for (int i = 0; i < MAX_PROGS && !p; i++) {
			if (s->progs[i].used && !strcmp(s->progs[i].w.name, cfg->workers[w].name))
				p = &s->progs[i];
			else if (!spare && (!s->progs[i].used ||
					    (!running_of(&s->progs[i]) && !s->progs[i].configured &&
					     strcmp(s->progs[i].w.name, cfg->workers[w].name))))
				spare = &s->progs[i];
		}
		if (p && !same_program(&p->w, &cfg->workers[w])) {
			log_info("SIGHUP: worker %s changed: restarting its instances", p->w.name);
			retire(p, 0);
			if (!running_of(p)) {
				prog_init(s, p, &cfg->workers[w]);
			} else {
				/* Its old instances end in their own time; the new ones need a slot. */
				snprintf(p->w.name, sizeof(p->w.name), "%.50s~old", cfg->workers[w].name);
				p = NULL;
			}
		}
		if (!p) {
			if (!spare) {
				log_error(ENOSPC, "SIGHUP: worker %s not started: too many programs stopping",
					  cfg->workers[w].name);
				continue;
			}
			prog_init(s, spare, &cfg->workers[w]);
			p = spare;
			log_info("SIGHUP: worker %s added", p->w.name);
		}
		p->configured = 1;
		if (cfg->workers[w].instances < p->n)
			retire(p, cfg->workers[w].instances);
		p->w = cfg->workers[w];
		p->n = cfg->workers[w].instances;
	}
	for (int i = 0; i < MAX_PROGS; i++)
		if (s->progs[i].used && !s->progs[i].configured) {
			if (running_of(&s->progs[i]) && !strstr(s->progs[i].w.name, "~old"))
				log_info("SIGHUP: worker %s removed: stopping it", s->progs[i].w.name);
			retire(&s->progs[i], 0);
		}
	if (s->started && !s->stopping)
		sup_start(s);
}

void sup_stop_all(struct sup *s)
{
	if (!s || s->stopping)
		return;
	s->stopping = 1;
	for (int i = 0; i < MAX_PROGS; i++)
		for (unsigned k = 0; s->progs[i].used && k < MAX_INST; k++)
			term(&s->progs[i].inst[k], SIGTERM);
	if (sup_running(s))
		log_info("stopping %u workers (SIGTERM)", sup_running(s));
}

void sup_kill_all(struct sup *s)
{
	for (int i = 0; s && i < MAX_PROGS; i++)
		for (unsigned k = 0; s->progs[i].used && k < MAX_INST; k++)
			term(&s->progs[i].inst[k], SIGKILL);
}

void sup_free(struct sup *s)
{
	if (!s)
		return;
	if (sup_running(s))
		log_warn(0, "%u workers did not stop: SIGKILL", sup_running(s));
	sup_kill_all(s);
	for (int i = 0; i < MAX_PROGS; i++)
		for (unsigned k = 0; s->progs[i].used && k < MAX_INST; k++) {
			struct inst *in = &s->progs[i].inst[k];
			if (in->state != I_RUNNING)
				continue;
			waitpid(in->pid, NULL, 0);
			close(in->pidfd);
		}
	free(s);
}

/* ---- the live upgrade (docs/UPGRADE.md, "Workers the gateway runs") ---- */

int sup_ho_each(struct sup *s, sup_ho_fn *fn, void *arg)
{
	uint32_t now = s ? loop_now(s->loop) : 0;
	for (int i = 0; s && i < MAX_PROGS; i++)
		for (unsigned k = 0; s->progs[i].used && k < MAX_INST; k++) {
			const struct inst *in = &s->progs[i].inst[k];
			if (in->state != I_RUNNING)
				continue;
			struct sup_moving m = { s->progs[i].w.name, k, in->pid, in->pidfd, now - in->started,
						in->restarts, in->delay_ms };
			int rc = fn(arg, &m);
			if (rc)
				return rc;
		}
	return 0;
}

/* The program named name. When this configuration has none, a free slot becomes a program
 * of that name that is not configured (sup_start stops its instances); NULL when no slot
 * is free. */
static struct prog *adoptive(struct sup *s, const char *name)
{
	struct prog *spare = NULL;
	for (int i = 0; i < MAX_PROGS; i++) {
		if (s->progs[i].used && !strcmp(s->progs[i].w.name, name))
			return &s->progs[i];
		if (!spare && !s->progs[i].used)
			spare = &s->progs[i];
	}
	if (spare) {
		struct cfg_worker w;
		memset(&w, 0, sizeof(w));
		snprintf(w.name, sizeof(w.name), "%s", name);
		prog_init(s, spare, &w);
		spare->configured = 0;
	}
	return spare;
}

int sup_ho_adopt(struct sup *s, const struct sup_moving *m, const char **why)
{
	struct prog *p = adoptive(s, m->name);
	struct inst *in = p && m->instance < MAX_INST ? &p->inst[m->instance] : NULL;
	if (!in || in->state != I_IDLE) {
		*why = !in ? "no room for its program" : "its instance is taken";
		close(m->pidfd);
		return -EEXIST;
	}
	in->pid = m->pid;
	in->pidfd = m->pidfd;
	in->started = loop_now(s->loop) - m->ran_ms;
	in->restarts = m->restarts;
	in->delay_ms = m->delay_ms;
	in->state = I_RUNNING;
	in->src.fn = on_exit_fd;
	int rc = loop_add(s->loop, in->pidfd, EPOLLIN, &in->src);
	if (rc) {
		*why = "its pidfd cannot be watched";
		close(in->pidfd);
		in->pidfd = -1;
		in->pid = 0;
		in->state = I_IDLE;
		return rc;
	}
	log_info("worker %s[%u] (pid %d) taken over, running for %u ms", m->name, m->instance, (int)m->pid,
		 m->ran_ms);
	return 0;
}

void sup_ho_forget(struct sup *s)
{
	for (int i = 0; s && i < MAX_PROGS; i++)
		for (unsigned k = 0; s->progs[i].used && k < MAX_INST; k++) {
			struct inst *in = &s->progs[i].inst[k];
			if (in->state == I_RUNNING) {
				loop_del(s->loop, in->pidfd);
				close(in->pidfd);
				in->pidfd = -1;
				in->pid = 0;
			}
			in->state = I_IDLE;
		}
	if (s)
		s->stopping = 1; /* nothing restarts here: they are the other process's */
}

void sup_each(struct sup *s, void (*fn)(void *arg, const struct sup_info *i), void *arg)
{
	uint32_t now = s ? loop_now(s->loop) : 0;
	for (int i = 0; s && i < MAX_PROGS; i++) {
		const struct prog *p = &s->progs[i];
		for (unsigned k = 0; p->used && k < MAX_INST; k++) {
			const struct inst *in = &p->inst[k];
			if (k >= p->n && in->state != I_RUNNING)
				continue;
			struct sup_info info = { p->w.name, p->w.pool, k, in->pid, in->restarts, 0,
						 in->delay_ms, in->last_status };
			if (in->state == I_WAITING)
				info.next_ms = (int32_t)(in->restart_at - now) > 0 ? in->restart_at - now : 0;
			fn(arg, &info);
		}
	}
}

unsigned sup_pool_restarts(struct sup *s, const char *pool)
{
	unsigned n = 0;
	for (int i = 0; s && i < MAX_PROGS; i++)
		for (unsigned k = 0; s->progs[i].used && k < MAX_INST; k++)
			if (!strcmp(s->progs[i].w.pool, pool))
				n += s->progs[i].inst[k].restarts;
	return n;
}
