/*
 * paas-shim: the per-container supervisor.
 *
 * Runs `RUNTIME run --detach --bundle B --pid-file S/pid ID` as a child subreaper: the runtime exits
 * once the container runs and the container's init becomes our child (no runtime process stays
 * resident, as with conmon). It holds the container's stdout/stderr in a timestamped log with
 * size-based rotation, records status and exit code in
 * S/status.json (atomically), applies the restart policy with exponential backoff, and stops the
 * container on SIGTERM (stop signal, then SIGKILL after a timeout). It detaches from its caller,
 * so it outlives the daemon, which re-reads S/status.json after a restart.
 *
 * With --attached (a foreground `run --rm`: someone waits for the exit) the runtime runs without
 * --detach instead: it stays resident, reaps the container and deletes its state itself, as
 * `crun run` does, which saves exec'ing `RUNTIME delete` (~10 ms) after the exit.
 *
 * --oom-file F (the container's memory cgroup's memory.oom_control on v1, memory.events on v2): its
 * "oom_kill N" count, read before and after each run, tells an exit caused by the kernel's OOM killer at
 * the memory limit; status.json says so (oom_killed, oom_kills) and the log notes it. Not for --attached:
 * the runtime deletes the cgroup before we could read it.
 *
 * --unmount PATH and --remove DIR (a container removed when it exits, like conmon's exit command):
 * after reporting the exit, unmount the root filesystem and empty its upper/work dirs, while the
 * waiting caller tears down the rest (network, records); it waits for this process before it
 * removes the container directory.
 *
 * --tty / --stdin (interactive containers, `run -i -t`, `attach`): see "interactive containers" below.
 *
 * Kept small on purpose (about 1 MB RSS): no allocation in the loop, fixed buffers.
 * Log line format (CRI style): "<RFC3339 nanoseconds UTC> <stdout|stderr> <F|P> <text>".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 16384
#define MAX_RUNTIME_ARGS 32
#define MAX_REMOVE 4

static const char *opt_id, *opt_bundle, *opt_state, *opt_log, *opt_restart = "no";
static long opt_log_max = 10L << 20, opt_log_keep = 3, opt_max_restarts = 0;
static long opt_backoff_ms = 100, opt_backoff_max_ms = 30000, opt_stop_timeout = 10;
static int opt_stop_signal = SIGTERM, opt_hybrid_fix = 0, opt_attached = 0;
static const char *opt_unmount = NULL, *opt_remove[MAX_REMOVE], *opt_oom_file = NULL;
static int remove_count = 0;
static char *runtime_argv[MAX_RUNTIME_ARGS];
static int runtime_argc = 0;

static volatile sig_atomic_t stop_requested = 0;
static int log_fd = -1;
static long log_size = 0;

struct stream {
    const char *name;
    int fd;
    char buf[LINE_MAX_BYTES];
    size_t len;
    int crlf;  /* a terminal's output: lines end in \r\n, logged without the \r */
};

static void on_stop(int sig) { (void)sig; stop_requested = 1; }

/* SIGCHLD wakes the poll loop through this pipe: a runtime that exits just after closing its output
 * pipes (the kernel closes files before it makes the zombie) must not wait for the next timeout */
static int child_pipe[2] = {-1, -1};

static void on_child(int sig) {
    (void)sig;
    int saved = errno;
    if (write(child_pipe[1], "c", 1) < 0) { /* full: a wake-up is pending anyway */ }
    errno = saved;
}

static void timestamp(char *out, size_t n) {
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t k = strftime(out, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + k, n - k, ".%09ldZ", ts.tv_nsec);
}

static void write_all(int fd, const char *data, size_t len) {
    while (len > 0) {
        ssize_t w = write(fd, data, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            return;
        }
        data += w;
        len -= (size_t)w;
    }
}

static void open_log(void) {
    log_fd = open(opt_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    struct stat st;
    log_size = (log_fd >= 0 && fstat(log_fd, &st) == 0) ? st.st_size : 0;
}

static void rotate_log(void) {
    char from[4096], to[4096];
    if (log_fd >= 0) close(log_fd);
    for (long i = opt_log_keep; i >= 1; i--) {
        if (i == 1) snprintf(from, sizeof from, "%s", opt_log);
        else snprintf(from, sizeof from, "%s.%ld", opt_log, i - 1);
        snprintf(to, sizeof to, "%s.%ld", opt_log, i);
        rename(from, to);  /* missing files are fine */
    }
    if (opt_log_keep == 0) unlink(opt_log);
    open_log();
}

static void log_line(const char *stream, int partial, const char *text, size_t len) {
    char head[96];
    timestamp(head, sizeof head);
    size_t hl = strlen(head);
    hl += (size_t)snprintf(head + hl, sizeof head - hl, " %s %c ", stream, partial ? 'P' : 'F');
    if (log_size + (long)(hl + len + 1) > opt_log_max && log_size > 0) rotate_log();
    if (log_fd < 0) return;
    struct iovec_like { const char *p; size_t n; } parts[3] = {{head, hl}, {text, len}, {"\n", 1}};
    for (int i = 0; i < 3; i++) write_all(log_fd, parts[i].p, parts[i].n);
    log_size += (long)(hl + len + 1);
}

static void shim_note(const char *fmt, ...) {
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (n > 0) log_line("shim", 0, text, (size_t)(n < (int)sizeof text ? n : (int)sizeof text - 1));
}

/* Log the complete lines in s->buf; a full buffer without one is logged as partial. */
static void log_lines(struct stream *s) {
    size_t start = 0;
    for (size_t i = 0; i < s->len; i++) {
        if (s->buf[i] == '\n') {
            size_t end = i;
            if (s->crlf && end > start && s->buf[end - 1] == '\r') end--;
            log_line(s->name, 0, s->buf + start, end - start);
            start = i + 1;
        }
    }
    if (start == 0 && s->len == sizeof s->buf) {
        log_line(s->name, 1, s->buf, s->len);
        s->len = 0;
    } else if (start > 0) {
        memmove(s->buf, s->buf + start, s->len - start);
        s->len -= start;
    }
}

static void log_rest(struct stream *s) {
    if (s->len) log_line(s->name, 0, s->buf, s->len);
    s->len = 0;
}

/* Returns 0 at EOF, 1 otherwise. Complete lines are logged; a full buffer is logged as partial. */
static int pump(struct stream *s) {
    ssize_t n = read(s->fd, s->buf + s->len, sizeof s->buf - s->len);
    if (n < 0) return errno == EINTR || errno == EAGAIN ? 1 : 0;
    if (n == 0) {
        log_rest(s);
        return 0;
    }
    s->len += (size_t)n;
    log_lines(s);
    return 1;
}

/* The same for bytes read elsewhere (a terminal's output, which also goes to attached clients). */
static void log_bytes(struct stream *s, const char *data, size_t n) {
    while (n > 0) {
        size_t k = sizeof s->buf - s->len < n ? sizeof s->buf - s->len : n;
        memcpy(s->buf + s->len, data, k);
        s->len += k;
        data += k;
        n -= k;
        log_lines(s);
    }
}

static char started_at[64] = "", finished_at[64] = "";
static int last_oom = 0;        /* the last exit was an OOM kill */
static long oom_kills = 0;      /* runs ended by an OOM kill, over all restarts */

static void write_status(const char *status, int exit_code, long restarts, pid_t child) {
    char path[4096], tmp[4096], body[1024];
    snprintf(path, sizeof path, "%s/status.json", opt_state);
    snprintf(tmp, sizeof tmp, "%s/.status.json.tmp", opt_state);
    char code[32];
    if (exit_code >= 0) snprintf(code, sizeof code, "%d", exit_code);
    else snprintf(code, sizeof code, "null");
    int n = snprintf(body, sizeof body,
                     "{\"status\": \"%s\", \"exit_code\": %s, \"restarts\": %ld, \"shim_pid\": %d, "
                     "\"runtime_pid\": %d, \"started_at\": \"%s\", \"finished_at\": \"%s\", "
                     "\"stop_requested\": %s, \"oom_killed\": %s, \"oom_kills\": %ld}\n",
                     status, code, restarts, (int)getpid(), (int)child, started_at, finished_at,
                     stop_requested ? "true" : "false", last_oom ? "true" : "false", oom_kills);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return;
    write_all(fd, body, (size_t)n);
    fsync(fd);
    close(fd);
    rename(tmp, path);
}

static pid_t read_container_pid(void) {
    char path[4096], buf[32] = {0};
    snprintf(path, sizeof path, "%s/pid", opt_state);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    return n > 0 ? (pid_t)atoi(buf) : 0;
}

/* the "oom_kill N" count of --oom-file; 0 when there is none (no cgroup yet, or no such file) */
static long read_oom_kills(void) {
    char buf[1024];
    if (!opt_oom_file) return 0;
    int fd = open(opt_oom_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    for (char *line = buf; line;) {
        if (!strncmp(line, "oom_kill ", 9)) return atol(line + 9);
        line = strchr(line, '\n');
        if (line) line++;
    }
    return 0;
}

/* ---- interactive containers (--tty, --stdin) ------------------------------------------------------------
 * --tty: the process has a terminal (config.json process.terminal): the runtime gets --console-socket
 * S/console.sock and hands us the PTY master over it (SCM_RIGHTS; runc allows that only with --detach, so
 * --tty implies a detached runtime). --stdin (without --tty): the container's stdin is a pipe whose write
 * end we hold. Either way we listen on S/attach.sock: what a client sends goes to the container (the master,
 * or the stdin pipe), and a terminal's output goes to every client besides the log. A client first gets
 * one byte carrying the master (SCM_RIGHTS), on which it sets the window size itself (TIOCSWINSZ: the
 * kernel then sends SIGWINCH to the container's foreground process group). A client that goes away
 * detaches; with --stdin-once (a foreground `run -i`) its EOF also closes the container's stdin.
 * --wait-attach: the runtime starts only once the first client is connected (at most 30 s), so it misses
 * no output. Flow control: while input waits for the container, clients are not read; while a client has
 * not taken all of the terminal's output, the master is not read (the container blocks, as it would on a
 * slow terminal). */
#define MAX_CLIENTS 8
static int opt_tty = 0, opt_stdin = 0, opt_stdin_once = 0, opt_wait_attach = 0;
static int state_dirfd = -1, attach_fd = -1, console_fd = -1, master_fd = -1, stdin_w = -1;
static int client_fd[MAX_CLIENTS], client_ready[MAX_CLIENTS], nclients = 0;
static size_t client_sent[MAX_CLIENTS];
static char in_buf[8192], out_buf[8192];  /* input on its way to the container; terminal output to clients */
static size_t in_len = 0, in_off = 0, out_len = 0;
static int close_stdin_when_sent = 0;
static struct stream tty_log = {"stdout", -1, {0}, 0, 1};

/* Where NAME in the state dir is for bind/connect: state paths longer than sun_path go through
 * /proc/PID/fd/DIRFD/NAME (pid 0: /proc/self), which the kernel resolves to the same directory. */
static int sock_addr(struct sockaddr_un *sa, const char *name, pid_t pid) {
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    int n = snprintf(sa->sun_path, sizeof sa->sun_path, "%s/%s", opt_state, name);
    if (n < 0 || (size_t)n >= sizeof sa->sun_path) {
        if (pid) n = snprintf(sa->sun_path, sizeof sa->sun_path, "/proc/%d/fd/%d/%s", (int)pid, state_dirfd, name);
        else n = snprintf(sa->sun_path, sizeof sa->sun_path, "/proc/self/fd/%d/%s", state_dirfd, name);
    }
    return n > 0 && (size_t)n < sizeof sa->sun_path ? 0 : -1;
}

static int listen_at(const char *name) {
    struct sockaddr_un sa;
    if (sock_addr(&sa, name, 0)) return -1;
    unlinkat(state_dirfd, name, 0);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) || listen(fd, MAX_CLIENTS)) { close(fd); return -1; }
    fchmodat(state_dirfd, name, 0600, 0);  /* root only: it hands out the terminal */
    return fd;
}

/* the PTY master from the runtime's connection to the console socket; -1 if none came */
static int receive_master(void) {
    int conn = accept4(console_fd, NULL, NULL, SOCK_CLOEXEC);
    if (conn < 0) return -1;
    struct timeval tv = {2, 0};  /* the runtime sends right after connecting */
    setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char data[256];  /* runc sends the name "/dev/ptmx" along */
    struct iovec iov = {data, sizeof data};
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = u.buf;
    msg.msg_controllen = sizeof u.buf;
    int fd = -1;
    ssize_t n;
    /* a socket with a receive timeout is not restarted after a signal (SIGCHLD): retry ourselves */
    while ((n = recvmsg(conn, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {}
    if (n >= 0) {
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) memcpy(&fd, CMSG_DATA(c), sizeof fd);
    }
    close(conn);
    return fd;
}

static void make_ready(int i);

/* the runtime's connection to the console socket, if one waits: the master, clients get it; 1 if it came */
static int take_master(void) {
    if (master_fd >= 0 || console_fd < 0 || (master_fd = receive_master()) < 0) return 0;
    fcntl(master_fd, F_SETFL, O_NONBLOCK);
    for (int i = 0; i < nclients; i++) make_ready(i);
    return 1;
}

/* hand the master to a client: one byte 'T' with the fd attached */
static int send_master(int client) {
    char byte = 'T';
    struct iovec iov = {&byte, 1};
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
    memset(&u, 0, sizeof u);
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = u.buf;
    msg.msg_controllen = sizeof u.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &master_fd, sizeof master_fd);
    return sendmsg(client, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) == 1 ? 0 : -1;
}

/* a client is ready once it has the master (at once without a terminal); it gets output from then on */
static void make_ready(int i) {
    if (client_ready[i] || (opt_tty && master_fd < 0)) return;
    if (opt_tty && send_master(client_fd[i]) != 0) {
        close(client_fd[i]);
        client_fd[i] = -1;
        return;
    }
    client_ready[i] = 1;
    client_sent[i] = out_len;  /* output that others are still taking is not for it */
}

static void accept_client(void) {
    int fd = accept4(attach_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;
    if (nclients == MAX_CLIENTS) { close(fd); return; }
    client_fd[nclients] = fd;
    client_ready[nclients] = 0;
    make_ready(nclients++);
}

static void drop_client(int i) {
    close(client_fd[i]);
    client_fd[i] = -1;
    if (opt_stdin_once && !opt_tty) close_stdin_when_sent = 1;
}

/* forget dropped clients (fd -1) */
static void compact_clients(void) {
    int k = 0;
    for (int i = 0; i < nclients; i++) {
        if (client_fd[i] < 0) continue;
        client_fd[k] = client_fd[i];
        client_ready[k] = client_ready[i];
        client_sent[k++] = client_sent[i];
    }
    nclients = k;
}

static int output_pending(void) {
    for (int i = 0; i < nclients; i++)
        if (client_fd[i] >= 0 && client_ready[i] && client_sent[i] < out_len) return 1;
    return 0;
}

/* send what each client still lacks of out_buf; once all have it, the master may be read again */
static void send_output(void) {
    for (int i = 0; i < nclients; i++) {
        if (client_fd[i] < 0 || !client_ready[i] || client_sent[i] >= out_len) continue;
        ssize_t w = send(client_fd[i], out_buf + client_sent[i], out_len - client_sent[i], MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) client_sent[i] += (size_t)w;
        else if (w < 0 && errno != EAGAIN && errno != EINTR) drop_client(i);
    }
    if (!output_pending()) out_len = 0;
}

/* write pending input to the container (the master, or the stdin pipe); what it cannot take is dropped */
static void send_input(void) {
    int target = opt_tty ? master_fd : stdin_w;
    if (in_len > in_off && target >= 0) {
        ssize_t w = write(target, in_buf + in_off, in_len - in_off);
        if (w > 0) in_off += (size_t)w;
        else if (w < 0 && errno != EAGAIN && errno != EINTR) in_off = in_len;  /* EPIPE, EIO: gone */
    } else {
        in_off = in_len;
    }
    if (in_off >= in_len) in_len = in_off = 0;
    if (!in_len && close_stdin_when_sent && stdin_w >= 0) {
        close(stdin_w);  /* the container reads EOF */
        stdin_w = -1;
    }
}

static void read_client(int i) {
    ssize_t n = read(client_fd[i], in_buf, sizeof in_buf);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        drop_client(i);
        send_input();  /* with --stdin-once: closes stdin once what it sent is through */
        return;
    }
    if (n > 0) {
        in_len = (size_t)n;
        in_off = 0;
        send_input();
    }
}

/* the terminal's output: log it and pass it on; 0 at EOF (EIO once no process holds the terminal) */
static int read_master(void) {
    ssize_t n = read(master_fd, out_buf, sizeof out_buf);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 1;
    if (n <= 0) { log_rest(&tty_log); return 0; }
    log_bytes(&tty_log, out_buf, (size_t)n);
    out_len = (size_t)n;
    for (int i = 0; i < nclients; i++) client_sent[i] = client_ready[i] ? 0 : out_len;
    send_output();
    return 1;
}

/* after each run: clients see EOF (after what they were sent), the terminal and stdin are closed */
static void end_interactive_run(void) {
    for (int i = 0; i < nclients; i++) if (client_fd[i] >= 0) close(client_fd[i]);
    nclients = 0;
    if (master_fd >= 0) close(master_fd);
    if (stdin_w >= 0) close(stdin_w);
    if (console_fd >= 0) { close(console_fd); unlinkat(state_dirfd, "console.sock", 0); }
    master_fd = stdin_w = console_fd = -1;
    in_len = in_off = out_len = 0;
    close_stdin_when_sent = 0;
    log_rest(&tty_log);
}

static void run_and_wait(char *const argv[]) {
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0); dup2(devnull, 1); dup2(devnull, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    if (pid > 0) while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
}

static void hybrid_fix(void) {
    /* crun refuses hybrid cgroups: hide the cgroup2 mount in a private mount namespace */
    if (unshare(CLONE_NEWNS) == 0) {
        mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
        umount2("/sys/fs/cgroup/unified", MNT_DETACH);
    }
}

/* in_fd: the container's stdin (-1: /dev/null); console: the console socket for a terminal (or NULL) */
static pid_t start_runtime(int out_fd, int err_fd, int in_fd, char *console) {
    char pidfile[4096];
    snprintf(pidfile, sizeof pidfile, "%s/pid", opt_state);
    unlink(pidfile);
    char *argv[MAX_RUNTIME_ARGS + 11];
    int k = 0;
    for (int i = 0; i < runtime_argc; i++) argv[k++] = runtime_argv[i];
    argv[k++] = "run";
    if (!opt_attached) argv[k++] = "--detach";
    if (console) {
        argv[k++] = "--console-socket";
        argv[k++] = console;
    }
    argv[k++] = "--bundle";
    argv[k++] = (char *)opt_bundle;
    argv[k++] = "--pid-file";
    argv[k++] = pidfile;
    argv[k++] = (char *)opt_id;
    argv[k] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        if (opt_hybrid_fix) hybrid_fix();
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        int devnull = open("/dev/null", O_RDONLY);
        dup2(in_fd >= 0 ? in_fd : devnull, 0);
        dup2(out_fd, 1);
        dup2(err_fd, 2);
        execv(argv[0], argv);
        dprintf(2, "paas-shim: cannot exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

static void delete_runtime_state(void) {
    char *argv[MAX_RUNTIME_ARGS + 5];
    int k = 0;
    for (int i = 0; i < runtime_argc; i++) argv[k++] = runtime_argv[i];
    argv[k++] = "delete";
    argv[k++] = "--force";
    argv[k++] = (char *)opt_id;
    argv[k] = NULL;
    if (opt_hybrid_fix) {
        pid_t pid = fork();
        if (pid == 0) { hybrid_fix(); run_and_wait(argv); _exit(0); }
        if (pid > 0) while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
    } else {
        run_and_wait(argv);
    }
}

/* Children reaped while we were waiting for something else (the container may exit very fast). */
#define MAX_EARLY 16
static struct { pid_t pid; int status; } early[MAX_EARLY];
static int early_count = 0;

static void remember(pid_t pid, int status) {
    if (early_count < MAX_EARLY) { early[early_count].pid = pid; early[early_count].status = status; early_count++; }
}

static int take_early(pid_t pid, int *status) {
    for (int i = 0; i < early_count; i++) {
        if (early[i].pid == pid) {
            *status = early[i].status;
            early[i] = early[--early_count];
            return 1;
        }
    }
    return 0;
}

static int elapsed(const struct timespec *now, const struct timespec *deadline) {
    return now->tv_sec > deadline->tv_sec || (now->tv_sec == deadline->tv_sec && now->tv_nsec >= deadline->tv_nsec);
}

static int exit_code_of(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return 125;
}

/* Run the container once; returns its exit code (128+signal when killed). */
static int run_once(long restarts) {
    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) return 125;
    timestamp(started_at, sizeof started_at);
    finished_at[0] = 0;
    early_count = 0;
    int in[2] = {-1, -1};
    if (opt_stdin && !opt_tty && pipe2(in, O_CLOEXEC) == 0) {
        stdin_w = in[1];
        fcntl(stdin_w, F_SETFL, O_NONBLOCK);  /* only our end: the container reads as usual */
    }
    struct sockaddr_un console;
    if (opt_tty && ((console_fd = listen_at("console.sock")) < 0 || sock_addr(&console, "console.sock", getpid()))) {
        shim_note("cannot listen on %s/console.sock: %s", opt_state, strerror(errno));
        int fds[] = {out[0], out[1], err[0], err[1], in[0]};
        for (int i = 0; i < 5; i++) if (fds[i] >= 0) close(fds[i]);
        end_interactive_run();
        return 125;
    }
    pid_t runtime = start_runtime(out[1], err[1], in[0], opt_tty ? console.sun_path : NULL);
    close(out[1]);
    close(err[1]);
    if (in[0] >= 0) close(in[0]);
    if (runtime < 0) return 125;
    struct stream streams[2] = {{"stdout", out[0], {0}, 0, 0}, {"stderr", err[0], {0}, 0, 0}};
    int open_streams = 2, status = 0, runtime_done = 0, container_done = 0, signalled = 0, started = 0;
    pid_t container = 0;
    struct timespec stop_deadline = {0, 0}, drain_deadline = {0, 0};
    for (;;) {
        /* the runtime's stdout/stderr, the SIGCHLD pipe, then what interactive containers add */
        enum { STREAM, CHILD, ATTACH, CONSOLE, MASTER, STDIN, CLIENT };
        struct pollfd fds[6 + MAX_CLIENTS];
        int nfds = 0, kind[6 + MAX_CLIENTS], map[6 + MAX_CLIENTS];
#define WATCH(f, ev, k, m) do { fds[nfds].fd = (f); fds[nfds].events = (ev); kind[nfds] = (k); map[nfds++] = (m); } while (0)
        for (int i = 0; i < 2; i++) if (streams[i].fd >= 0) WATCH(streams[i].fd, POLLIN, STREAM, i);
        WATCH(child_pipe[0], POLLIN, CHILD, 0);
        if (attach_fd >= 0) WATCH(attach_fd, POLLIN, ATTACH, 0);
        if (console_fd >= 0 && master_fd < 0) WATCH(console_fd, POLLIN, CONSOLE, 0);
        /* only what we wait for: a hung-up master or pipe would wake poll at once if watched idly */
        short master_events = (out_len ? 0 : POLLIN) | (in_len ? POLLOUT : 0);
        if (master_fd >= 0 && master_events) WATCH(master_fd, master_events, MASTER, 0);
        if (stdin_w >= 0 && in_len) WATCH(stdin_w, POLLOUT, STDIN, 0);
        for (int i = 0; i < nclients; i++) {
            short ev = (in_len ? 0 : POLLIN) | (client_ready[i] && client_sent[i] < out_len ? POLLOUT : 0);
            if (ev) WATCH(client_fd[i], ev, CLIENT, i);
        }
#undef WATCH
        /* attached and not started yet: look for the runtime's pid file every 5 ms */
        int ready = poll(fds, (nfds_t)nfds, opt_attached && !started ? 5 : 200);
        for (int j = 0; ready > 0 && j < nfds; j++) {
            short rev = fds[j].revents;
            if (!rev) continue;
            if (kind[j] == STREAM && (rev & (POLLIN | POLLHUP | POLLERR))) {
                struct stream *s = &streams[map[j]];
                if (!pump(s)) { close(s->fd); s->fd = -1; open_streams--; }
            } else if (kind[j] == CHILD && (rev & POLLIN)) {
                char drain[64];
                while (read(child_pipe[0], drain, sizeof drain) > 0) {}
            } else if (kind[j] == ATTACH) {
                accept_client();
            } else if (kind[j] == CONSOLE) {
                open_streams += take_master();  /* the terminal is drained like the pipes after the exit */
            } else if (kind[j] == MASTER) {
                if ((rev & POLLOUT) && in_len) send_input();
                if ((rev & (POLLIN | POLLHUP | POLLERR)) && !out_len && !read_master()) {
                    close(master_fd);  /* clients may keep their copies for resizing: harmless */
                    master_fd = -1;
                    open_streams--;
                    in_len = in_off = 0;
                }
            } else if (kind[j] == STDIN) {
                send_input();
            } else if (kind[j] == CLIENT && client_fd[map[j]] >= 0) {
                if ((rev & POLLOUT) || (rev & (POLLHUP | POLLERR) && out_len)) send_output();
                if ((rev & (POLLIN | POLLHUP | POLLERR)) && !in_len && client_fd[map[j]] >= 0) read_client(map[j]);
            }
        }
        compact_clients();
        if (!output_pending()) out_len = 0;  /* the clients that lacked some of it are gone: read on */
        /* reap everything: the runtime, the container's init, and orphans handed to us */
        int st;
        pid_t w;
        while ((w = waitpid(-1, &st, WNOHANG)) > 0) {
            if (w == runtime) {
                runtime_done = 1;
                if (opt_attached || exit_code_of(st) != 0) {  /* the container never started: report the runtime's code */
                    status = st;
                    container_done = 1;
                }
            } else if (container && w == container) {
                status = st;
                container_done = 1;
            } else {
                remember(w, st);
            }
        }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (opt_attached && !started && !container_done && (container = read_container_pid()) > 0) {
            started = 1;  /* the attached runtime wrote the pid file: the container runs */
            write_status("running", -1, restarts, container);
        }
        if (!opt_attached && runtime_done && !started && !container_done) {
            container = read_container_pid();
            if (container <= 0) { status = 125 << 8; container_done = 1; }
            else {
                started = 1;
                write_status("running", -1, restarts, container);
                if (take_early(container, &st)) { status = st; container_done = 1; }
            }
        }
        if (!opt_attached && started && !container_done && kill(container, 0) < 0 && errno == ESRCH) {
            /* gone without reaching us (someone else reaped it): its exit code is unknown */
            shim_note("container process %d vanished; exit code unknown", (int)container);
            status = 255 << 8;
            container_done = 1;
        }
        if (container_done) {
            /* a container faster than this loop: its terminal (with all it printed) may still be queued */
            open_streams += take_master();
            if (drain_deadline.tv_sec == 0) {
                drain_deadline = now;
                /* leftover writers holding the pipes get a second; slow clients of a terminal five */
                drain_deadline.tv_sec += nclients ? 5 : 1;
            }
            if ((open_streams == 0 && !output_pending()) || elapsed(&now, &drain_deadline)) break;
            continue;
        }
        if (stop_requested) {
            pid_t target = container > 0 ? container : runtime;
            if (!signalled) {
                shim_note("stopping with signal %d (timeout %lds)", opt_stop_signal, opt_stop_timeout);
                kill(target, opt_stop_signal);
                signalled = 1;
                stop_deadline = now;
                stop_deadline.tv_sec += opt_stop_timeout;
            } else if (signalled == 1 && elapsed(&now, &stop_deadline)) {
                shim_note("stop timeout reached: SIGKILL");
                kill(target, SIGKILL);
                signalled = 2;
            }
        }
    }
    for (int i = 0; i < 2; i++) if (streams[i].fd >= 0) close(streams[i].fd);
    end_interactive_run();
    timestamp(finished_at, sizeof finished_at);
    return exit_code_of(status);
}

static int remove_entry(const char *path, const struct stat *st, int kind, struct FTW *ftw) {
    (void)st; (void)ftw;
    if (kind == FTW_DP || kind == FTW_DNR) rmdir(path);
    else unlink(path);
    return 0;  /* keep going: whatever is left, the caller's removal takes */
}

/* --unmount/--remove: never descend into a root filesystem that is still mounted (FTW_MOUNT also
 * keeps the walk on the upper dir's own filesystem) */
static void discard_rootfs(void) {
    if (opt_unmount && umount2(opt_unmount, 0) != 0 && errno != EINVAL) {
        shim_note("cannot unmount %s: %s", opt_unmount, strerror(errno));
        return;
    }
    for (int i = 0; i < remove_count; i++) nftw(opt_remove[i], remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

static int should_restart(int code, long restarts) {
    if (stop_requested) return 0;
    if (!strcmp(opt_restart, "always") || !strcmp(opt_restart, "unless-stopped")) return 1;
    if (!strcmp(opt_restart, "on-failure"))
        return code != 0 && (opt_max_restarts == 0 || restarts < opt_max_restarts);
    return 0;
}

static void sleep_ms_interruptible(long ms) {
    while (ms > 0 && !stop_requested) {
        long step = ms > 100 ? 100 : ms;
        struct timespec ts = {step / 1000, (step % 1000) * 1000000L};
        /* a SIGCHLD (an orphan reparented to us) interrupts too: sleep the rest */
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !stop_requested) {}
        ms -= step;
    }
}

static void usage(void) {
    fprintf(stderr, "usage: paas-shim --id ID --bundle DIR --state DIR --log FILE [--log-max BYTES] "
                    "[--log-keep N] [--restart POLICY] [--max-restarts N] [--backoff-ms MS] "
                    "[--backoff-max-ms MS] [--stop-signal N] [--stop-timeout S] [--hybrid-fix] "
                    "[--foreground] [--attached] [--oom-file F] [--unmount ROOTFS] [--remove DIR]... "
                    "[--tty] [--stdin] [--stdin-once] [--wait-attach] -- RUNTIME [ARGS...]\n");
    exit(2);
}

int main(int argc, char **argv) {
    int foreground = 0;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--")) { i++; break; }
        else if (!strcmp(a, "--hybrid-fix")) opt_hybrid_fix = 1;
        else if (!strcmp(a, "--foreground")) foreground = 1;
        else if (!strcmp(a, "--attached")) opt_attached = 1;
        else if (!strcmp(a, "--tty")) opt_tty = 1;
        else if (!strcmp(a, "--stdin")) opt_stdin = 1;
        else if (!strcmp(a, "--stdin-once")) opt_stdin_once = 1;
        else if (!strcmp(a, "--wait-attach")) opt_wait_attach = 1;
        else if (!v) usage();
        else if (!strcmp(a, "--id")) opt_id = v, i++;
        else if (!strcmp(a, "--bundle")) opt_bundle = v, i++;
        else if (!strcmp(a, "--state")) opt_state = v, i++;
        else if (!strcmp(a, "--log")) opt_log = v, i++;
        else if (!strcmp(a, "--log-max")) opt_log_max = atol(v), i++;
        else if (!strcmp(a, "--log-keep")) opt_log_keep = atol(v), i++;
        else if (!strcmp(a, "--restart")) opt_restart = v, i++;
        else if (!strcmp(a, "--max-restarts")) opt_max_restarts = atol(v), i++;
        else if (!strcmp(a, "--backoff-ms")) opt_backoff_ms = atol(v), i++;
        else if (!strcmp(a, "--backoff-max-ms")) opt_backoff_max_ms = atol(v), i++;
        else if (!strcmp(a, "--stop-signal")) opt_stop_signal = atoi(v), i++;
        else if (!strcmp(a, "--stop-timeout")) opt_stop_timeout = atol(v), i++;
        else if (!strcmp(a, "--unmount")) opt_unmount = v, i++;
        else if (!strcmp(a, "--oom-file")) opt_oom_file = v, i++;
        else if (!strcmp(a, "--remove") && remove_count < MAX_REMOVE) opt_remove[remove_count++] = v, i++;
        else usage();
    }
    for (; i < argc && runtime_argc < MAX_RUNTIME_ARGS - 1; i++) runtime_argv[runtime_argc++] = argv[i];
    runtime_argv[runtime_argc] = NULL;
    if (!opt_id || !opt_bundle || !opt_state || !opt_log || runtime_argc == 0) usage();
    if (opt_tty) opt_attached = 0;  /* a console socket needs a detached runtime (runc refuses it otherwise) */
    if (opt_tty || opt_stdin) {
        /* before detaching: once the caller has our pid, it can connect */
        state_dirfd = open(opt_state, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (state_dirfd < 0 || (attach_fd = listen_at("attach.sock")) < 0) {
            fprintf(stderr, "paas-shim: cannot listen on %s/attach.sock: %s\n", opt_state, strerror(errno));
            return 1;
        }
    }

    if (!foreground) {
        /* detach: the caller gets our pid on stdout and may exit; we live on in our own session */
        pid_t pid = fork();
        if (pid < 0) { perror("paas-shim: fork"); return 1; }
        if (pid > 0) { printf("%d\n", (int)pid); return 0; }
        setsid();
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0); dup2(devnull, 1); dup2(devnull, 2);
        if (devnull > 2) close(devnull);
    }
    if (chdir("/") != 0) return 1;
    /* the detached container's init (and anything its namespace leaves behind) is reparented to us */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (pipe2(child_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return 1;
    sa.sa_handler = on_child;
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
    open_log();

    long restarts = 0, backoff_step = 0;
    int code = 0;
    if (opt_wait_attach && attach_fd >= 0) {
        struct pollfd first = {attach_fd, POLLIN, 0};
        while (poll(&first, 1, 30000) < 0 && errno == EINTR && !stop_requested) {}
        accept_client();
    }
    for (;;) {
        if (stop_requested) {  /* stopped before it started (while waiting for the first client) */
            code = 128 + opt_stop_signal;
            break;
        }
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        long oom_before = read_oom_kills();  /* a cgroup left from an earlier run keeps its count */
        code = run_once(restarts);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        last_oom = read_oom_kills() > oom_before;
        if (last_oom) {
            oom_kills++;
            shim_note("out of memory: the kernel killed a process at the container's memory limit");
        }
        if (!should_restart(code, restarts)) break;
        if (!opt_attached) delete_runtime_state();
        if (t1.tv_sec - t0.tv_sec >= 10) backoff_step = 0;  /* it ran a while: start backoff afresh */
        long delay = opt_backoff_ms << (backoff_step < 20 ? backoff_step : 20);
        if (delay > opt_backoff_max_ms) delay = opt_backoff_max_ms;
        shim_note("exited with code %d; restart %ld in %ld ms (policy %s)", code, restarts + 1, delay,
                  opt_restart);
        write_status("restarting", code, restarts, 0);
        sleep_ms_interruptible(delay);
        if (stop_requested) break;
        restarts++;
        backoff_step++;
    }
    /* report the exit first, then delete the runtime's state: waiters learn of the exit ~15 ms sooner,
     * and whoever reuses the container id (start, rm) waits for this process to be gone */
    write_status(stop_requested ? "stopped" : "exited", code, restarts, 0);
    if (!opt_attached) delete_runtime_state();
    discard_rootfs();
    if (attach_fd >= 0) unlinkat(state_dirfd, "attach.sock", 0);
    if (log_fd >= 0) close(log_fd);
    return 0;
}
