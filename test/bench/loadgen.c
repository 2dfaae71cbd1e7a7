/*
 * loadgen — native NATS load generator for the meshbroker benchmark (test/bench/run.ts).
 *
 * Speaks the NATS text protocol over plain TCP so the same binary drives meshbroker and
 * nats-server; written in C so that on a 2-core machine the generator is not the bottleneck.
 *
 *   gcc -O2 -o loadgen test/bench/loadgen.c -lpthread
 *
 * Modes (result: one JSON line on stdout; errors: stderr and exit status 1):
 *   pubsub  --subs N [--queue Q] --count M --size B [--window W]
 *           N subscriber connections + 1 publisher connection. The publisher writes pre-built
 *           ~64 KB batches of "PUB subj B" and never runs more than W messages ahead of
 *           delivery, so a server's slow-consumer limit (max_pending) is never what is measured.
 *   reqrep  --count M --size B [--warmup K]
 *           one responder, one requester doing sequential requests; reports p50/p99 in µs.
 *   idle    --conns N
 *           opens N connections (CONNECT + PING, waits for every PONG), prints "READY N",
 *           holds them until stdin reaches EOF, then closes them.
 * Common: --host H (127.0.0.1) --port P (4222) --subject S (bench) --timeout SEC (30)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define CONNECT_LINE "CONNECT {\"verbose\":false,\"pedantic\":false,\"echo\":false}\r\nPING\r\n"
#define MAX_LINE (1u << 20) /* longest control line accepted (INFO can be long) */

typedef struct {
    const char *mode, *host, *subject, *queue;
    int port, subs, size, timeout, conns;
    long count, window, warmup;
} opts_t;

static opts_t O = {
    .host = "127.0.0.1", .subject = "bench", .port = 4222, .subs = 1, .size = 128,
    .timeout = 30, .conns = 1000, .count = 100000, .window = 20000, .warmup = 1000,
};

static void die(const char *fmt, ...) {
    va_list ap;
    fputs("loadgen: error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    _exit(1); /* other threads may be blocked in read(); do not run atexit handlers */
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds this process used, to show in the report that the generator had headroom. */
static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---------------------------------------------------------------------------------------
 * Connection + streaming protocol scanner. Control lines are parsed in place; only a line
 * split across two reads is copied into `line`. Payloads are skipped by exact byte count,
 * so a message may be split anywhere across reads.
 * ------------------------------------------------------------------------------------- */
typedef struct conn conn_t;
typedef void (*msg_fn)(conn_t *c, const char *line, size_t len);

struct conn {
    int fd;
    const char *name;
    char *rbuf;
    size_t rcap;
    char *line; /* spill buffer for a control line spanning reads */
    size_t linelen, linecap;
    uint64_t skip; /* payload bytes (incl. trailing CRLF) still to skip */
    uint64_t msgs, pongs, pings;
    int info;
    msg_fn on_msg;
    void *ud;
};

static uint64_t parse_u64(const char *p, size_t n, int *ok) {
    uint64_t v = 0;
    *ok = n > 0 && n <= 19;
    for (size_t i = 0; i < n && *ok; i++) {
        if (p[i] < '0' || p[i] > '9') *ok = 0;
        else v = v * 10 + (uint64_t)(p[i] - '0');
    }
    return v;
}

static void handle_line(conn_t *c, const char *p, size_t len) {
    if (len > 0 && p[len - 1] == '\r') len--;
    if ((len > 4 && memcmp(p, "MSG ", 4) == 0) || (len > 5 && memcmp(p, "HMSG ", 5) == 0)) {
        /* MSG <subject> <sid> [reply] <#bytes> / HMSG ... <#hdr> <#total>: size is the last token */
        const char *sp = memrchr(p, ' ', len);
        int ok;
        uint64_t size = parse_u64(sp + 1, len - (size_t)(sp + 1 - p), &ok);
        if (!ok) die("%s: bad message size in '%.*s'", c->name, (int)(len > 200 ? 200 : len), p);
        c->skip = size + 2;
        c->msgs++;
        if (c->on_msg) c->on_msg(c, p, len);
    } else if (len == 4 && memcmp(p, "PING", 4) == 0) {
        c->pings++;
    } else if (len == 4 && memcmp(p, "PONG", 4) == 0) {
        c->pongs++;
    } else if (len >= 5 && memcmp(p, "INFO ", 5) == 0) {
        c->info = 1;
    } else if (len >= 3 && memcmp(p, "+OK", 3) == 0) {
        /* verbose is off, but tolerate it */
    } else if (len >= 4 && memcmp(p, "-ERR", 4) == 0) {
        die("%s: server sent %.*s", c->name, (int)(len > 300 ? 300 : len), p);
    } else {
        die("%s: unexpected protocol line '%.*s'", c->name, (int)(len > 200 ? 200 : len), p);
    }
}

static void feed(conn_t *c, const char *buf, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (c->skip) {
            size_t take = n - i < c->skip ? n - i : (size_t)c->skip;
            c->skip -= take;
            i += take;
            continue;
        }
        const char *nl = memchr(buf + i, '\n', n - i);
        size_t seg = nl ? (size_t)(nl - (buf + i)) : n - i;
        if (!nl || c->linelen) {
            /* the line started in an earlier read or continues into the next one: spill it */
            if (c->linelen + seg > MAX_LINE) die("%s: control line longer than %u bytes", c->name, MAX_LINE);
            if (c->linelen + seg > c->linecap) {
                size_t cap = c->linecap ? c->linecap : 256;
                while (cap < c->linelen + seg) cap *= 2;
                c->line = realloc(c->line, cap);
                if (!c->line) die("out of memory");
                c->linecap = cap;
            }
            memcpy(c->line + c->linelen, buf + i, seg);
            c->linelen += seg;
            if (!nl) return;
            handle_line(c, c->line, c->linelen);
            c->linelen = 0;
        } else {
            handle_line(c, buf + i, seg);
        }
        i += seg + 1;
    }
}

/* A write failed: the server usually said why (-ERR) just before closing, so show that. */
static void die_write(conn_t *c, int err) {
    char buf[4096];
    ssize_t r = recv(c->fd, buf, sizeof buf - 1, MSG_DONTWAIT);
    char *e = NULL;
    if (r > 0) {
        buf[r] = 0;
        e = strstr(buf, "-ERR");
        if (e) e[strcspn(e, "\r\n")] = 0;
    }
    if (err == EAGAIN || err == EWOULDBLOCK)
        die("%s: write blocked for %d s (server not reading)", c->name, O.timeout);
    die("%s: write: %s%s%s", c->name, strerror(err), e ? "; server said: " : "", e ? e : "");
}

static void write_all(conn_t *c, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(c->fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            die_write(c, errno);
        }
        p += w;
        n -= (size_t)w;
    }
}

static void answer_pings(conn_t *c) {
    while (c->pings) {
        c->pings--;
        write_all(c, "PONG\r\n", 6);
    }
}

/* One read() into the connection's buffer, scanned. Returns bytes read; 0 means EOF. */
static ssize_t conn_read(conn_t *c, int eof_ok) {
    for (;;) {
        ssize_t r = read(c->fd, c->rbuf, c->rcap);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            die("%s: nothing received for %d s (server stopped delivering?)", c->name, O.timeout);
        if (r < 0) {
            if (eof_ok) return 0;
            die("%s: read: %s", c->name, strerror(errno));
        }
        if (r == 0) {
            if (eof_ok) return 0;
            die("%s: connection closed by server", c->name);
        }
        feed(c, c->rbuf, (size_t)r);
        return r;
    }
}

static void wait_pongs(conn_t *c, uint64_t target) {
    while (c->pongs < target) {
        conn_read(c, 0);
        answer_pings(c);
    }
}

static struct addrinfo *resolve(void) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", O.port);
    int rc = getaddrinfo(O.host, port, &hints, &ai);
    if (rc != 0) die("resolve %s: %s", O.host, gai_strerror(rc));
    return ai;
}

/* Connect, read INFO, send CONNECT + PING, wait for PONG. */
static void conn_open(conn_t *c, const struct addrinfo *ai, const char *name, size_t rcap) {
    memset(c, 0, sizeof *c);
    c->name = name;
    c->rcap = rcap;
    c->rbuf = malloc(rcap);
    if (!c->rbuf) die("out of memory");
    c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0) die("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {.tv_sec = O.timeout};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) < 0)
        die("%s: connect %s:%d: %s", name, O.host, O.port, strerror(errno));
    while (!c->info) conn_read(c, 0);
    write_all(c, CONNECT_LINE, sizeof CONNECT_LINE - 1);
    wait_pongs(c, c->pongs + 1);
}

static void conn_subscribe(conn_t *c, const char *subject, const char *queue, int sid) {
    char cmd[512];
    int n = queue ? snprintf(cmd, sizeof cmd, "SUB %s %s %d\r\nPING\r\n", subject, queue, sid)
                  : snprintf(cmd, sizeof cmd, "SUB %s %d\r\nPING\r\n", subject, sid);
    if (n <= 0 || (size_t)n >= sizeof cmd) die("subject too long");
    write_all(c, cmd, (size_t)n);
    wait_pongs(c, c->pongs + 1); /* the SUB is registered once its PONG is back */
}

static char *make_payload(int size) {
    char *p = malloc((size_t)size + 1);
    if (!p) die("out of memory");
    for (int i = 0; i < size; i++) p[i] = (char)('a' + i % 26);
    p[size] = 0;
    return p;
}

/* ---------------------------------------------------------------------------------------
 * pubsub
 * ------------------------------------------------------------------------------------- */
typedef struct {
    conn_t c;
    pthread_t th;
    _Atomic uint64_t got, pongs;
} sub_t;

static sub_t *SUBS;
static _Atomic uint64_t TOTAL_GOT;
static _Atomic int DONE;
static uint64_t EXPECTED;
static _Atomic double T_END; /* time the last expected message arrived */
static pthread_mutex_t MU = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t CV = PTHREAD_COND_INITIALIZER;

static void *sub_main(void *arg) {
    sub_t *s = arg;
    for (;;) {
        uint64_t before = s->c.msgs, pb = s->c.pongs;
        if (conn_read(&s->c, 1) == 0) { /* EOF: expected once main has shut the socket down */
            if (atomic_load(&DONE)) return NULL;
            die("%s: connection closed by server", s->c.name);
        }
        answer_pings(&s->c);
        uint64_t d = s->c.msgs - before;
        if (d) {
            atomic_store(&s->got, s->c.msgs);
            uint64_t prev = atomic_fetch_add(&TOTAL_GOT, d);
            if (prev < EXPECTED && prev + d >= EXPECTED) atomic_store(&T_END, now_s());
        }
        if (s->c.pongs != pb) atomic_store(&s->pongs, s->c.pongs); /* after got: pong implies got is current */
        if (d || s->c.pongs != pb) {
            pthread_mutex_lock(&MU);
            pthread_cond_broadcast(&CV);
            pthread_mutex_unlock(&MU);
        }
    }
}

/* Published messages known to be fully delivered: the slowest member for fan-out, the
 * group's total for a queue group (each message goes to exactly one member). */
static uint64_t delivered_equiv(void) {
    if (O.queue) return atomic_load(&TOTAL_GOT);
    uint64_t m = UINT64_MAX;
    for (int i = 0; i < O.subs; i++) {
        uint64_t g = atomic_load(&SUBS[i].got);
        if (g < m) m = g;
    }
    return m;
}

/* Wait until pred() holds, failing if nothing is delivered for O.timeout seconds. */
static void wait_progress(int (*pred)(uint64_t), uint64_t arg, const char *what) {
    uint64_t last = atomic_load(&TOTAL_GOT);
    double last_t = now_s();
    pthread_mutex_lock(&MU);
    while (!pred(arg)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
        pthread_cond_timedwait(&CV, &MU, &ts);
        uint64_t cur = atomic_load(&TOTAL_GOT);
        if (cur != last) { last = cur; last_t = now_s(); }
        else if (now_s() - last_t > O.timeout) {
            pthread_mutex_unlock(&MU);
            die("timeout waiting for %s: no message delivered for %d s (delivered %llu of %llu)",
                what, O.timeout, (unsigned long long)cur, (unsigned long long)EXPECTED);
        }
    }
    pthread_mutex_unlock(&MU);
}

static int pred_window(uint64_t need) { return delivered_equiv() >= need; }
static int pred_all(uint64_t unused) { (void)unused; return atomic_load(&TOTAL_GOT) >= EXPECTED; }
static int pred_subs_ponged(uint64_t target) {
    for (int i = 0; i < O.subs; i++)
        if (atomic_load(&SUBS[i].pongs) < target) return 0;
    return 1;
}

static int run_pubsub(void) {
    struct addrinfo *ai = resolve();
    if (O.subs < 1) die("--subs must be >= 1");
    EXPECTED = O.queue ? (uint64_t)O.count : (uint64_t)O.count * (uint64_t)O.subs;
    SUBS = calloc((size_t)O.subs, sizeof *SUBS);
    char **names = calloc((size_t)O.subs, sizeof *names);
    if (!SUBS || !names) die("out of memory");
    for (int i = 0; i < O.subs; i++) {
        if (asprintf(&names[i], "sub%d", i) < 0) die("out of memory");
        conn_open(&SUBS[i].c, ai, names[i], 256 * 1024);
        conn_subscribe(&SUBS[i].c, O.subject, O.queue, 1);
        atomic_store(&SUBS[i].pongs, SUBS[i].c.pongs);
    }
    conn_t pub;
    conn_open(&pub, ai, "pub", 64 * 1024);
    for (int i = 0; i < O.subs; i++)
        if (pthread_create(&SUBS[i].th, NULL, sub_main, &SUBS[i]) != 0) die("pthread_create failed");

    /* one pre-built ~64 KB batch of identical PUBs */
    char hdr[300];
    int hl = snprintf(hdr, sizeof hdr, "PUB %s %d\r\n", O.subject, O.size);
    size_t mlen = (size_t)hl + (size_t)O.size + 2;
    long per = (long)(65536 / mlen);
    if (per < 1) per = 1;
    char *batch = malloc(mlen * (size_t)per), *payload = make_payload(O.size);
    if (!batch) die("out of memory");
    for (long i = 0; i < per; i++) {
        char *m = batch + (size_t)i * mlen;
        memcpy(m, hdr, (size_t)hl);
        memcpy(m + hl, payload, (size_t)O.size);
        memcpy(m + hl + O.size, "\r\n", 2);
    }

    double t0 = now_s(), cpu0 = cpu_s();
    uint64_t sent = 0;
    while (sent < (uint64_t)O.count) {
        uint64_t n = (uint64_t)O.count - sent < (uint64_t)per ? (uint64_t)O.count - sent : (uint64_t)per;
        /* flow control: stay at most --window messages ahead of delivery */
        if (O.window > 0 && sent + n > (uint64_t)O.window)
            wait_progress(pred_window, sent + n - (uint64_t)O.window, "subscribers to catch up");
        write_all(&pub, batch, (size_t)n * mlen);
        sent += n;
    }
    write_all(&pub, "PING\r\n", 6);
    wait_pongs(&pub, pub.pongs + 1);
    double t_pub = now_s();
    wait_progress(pred_all, 0, "the last messages");
    double t_end = atomic_load(&T_END);
    double cpu = cpu_s() - cpu0;

    /* PING every subscriber: its PONG follows anything already queued for it, so a count
     * above the expected one now means duplicate or misrouted deliveries. */
    uint64_t target = UINT64_MAX; /* all subs have had the same number of PONGs so far */
    for (int i = 0; i < O.subs; i++) {
        uint64_t p = atomic_load(&SUBS[i].pongs);
        if (p < target) target = p;
    }
    for (int i = 0; i < O.subs; i++) write_all(&SUBS[i].c, "PING\r\n", 6);
    wait_progress(pred_subs_ponged, target + 1, "subscriber PONGs");
    uint64_t total = atomic_load(&TOTAL_GOT);
    atomic_store(&DONE, 1);
    for (int i = 0; i < O.subs; i++) shutdown(SUBS[i].c.fd, SHUT_RDWR);
    for (int i = 0; i < O.subs; i++) pthread_join(SUBS[i].th, NULL);
    if (total != EXPECTED)
        die("delivered %llu messages, expected exactly %llu", (unsigned long long)total,
            (unsigned long long)EXPECTED);

    char per_sub[4096];
    size_t off = 0;
    for (int i = 0; i < O.subs && off < sizeof per_sub - 32; i++)
        off += (size_t)snprintf(per_sub + off, sizeof per_sub - off, "%s%llu", i ? "," : "",
                                (unsigned long long)SUBS[i].got);
    per_sub[off] = 0;
    printf("{\"mode\":\"pubsub\",\"subs\":%d,\"queue\":%s,\"size\":%d,\"published\":%ld,"
           "\"delivered\":%llu,\"pub_rate\":%.1f,\"recv_rate\":%.1f,\"pub_s\":%.6f,\"elapsed_s\":%.6f,"
           "\"cpu_s\":%.3f,\"per_sub\":[%s]}\n",
           O.subs, O.queue ? "true" : "false", O.size, O.count, (unsigned long long)total,
           (double)O.count / (t_pub - t0), (double)total / (t_end - t0), t_pub - t0, t_end - t0, cpu, per_sub);
    close(pub.fd);
    freeaddrinfo(ai);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * reqrep
 * ------------------------------------------------------------------------------------- */
typedef struct {
    char *out;
    size_t len, cap;
    const char *payload;
} responder_t;

static void responder_on_msg(conn_t *c, const char *line, size_t len) {
    responder_t *r = c->ud;
    /* MSG <subject> <sid> <reply> <#bytes> */
    const char *tok[6];
    size_t tl[6];
    int nt = 0;
    for (size_t i = 0; i < len && nt < 6;) {
        while (i < len && line[i] == ' ') i++;
        if (i >= len) break;
        size_t s = i;
        while (i < len && line[i] != ' ') i++;
        tok[nt] = line + s;
        tl[nt++] = i - s;
    }
    if (nt != 5) die("responder: request without reply subject: '%.*s'", (int)len, line);
    size_t need = r->len + tl[3] + 40 + (size_t)O.size;
    if (need > r->cap) {
        r->cap = need * 2;
        r->out = realloc(r->out, r->cap);
        if (!r->out) die("out of memory");
    }
    r->len += (size_t)sprintf(r->out + r->len, "PUB %.*s %d\r\n", (int)tl[3], tok[3], O.size);
    memcpy(r->out + r->len, r->payload, (size_t)O.size);
    memcpy(r->out + r->len + O.size, "\r\n", 2);
    r->len += (size_t)O.size + 2;
}

static void *responder_main(void *arg) {
    conn_t *c = arg;
    responder_t *r = c->ud;
    for (;;) {
        if (conn_read(c, 1) == 0) {
            if (atomic_load(&DONE)) return NULL;
            die("responder: connection closed by server");
        }
        answer_pings(c);
        if (r->len) {
            write_all(c, r->out, r->len);
            r->len = 0;
        }
    }
}

typedef struct {
    char expect[128];
    size_t expect_len;
} requester_t;

static void requester_on_msg(conn_t *c, const char *line, size_t len) {
    requester_t *q = c->ud;
    /* "MSG <inbox> ..." must name the inbox of the request in flight */
    if (len < 4 + q->expect_len + 1 || memcmp(line + 4, q->expect, q->expect_len) != 0 ||
        line[4 + q->expect_len] != ' ')
        die("requester: reply for the wrong request: '%.*s' (expected %s)", (int)len, line, q->expect);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int run_reqrep(void) {
    struct addrinfo *ai = resolve();
    responder_t r = {.payload = make_payload(O.size)};
    conn_t rc, qc;
    conn_open(&rc, ai, "responder", 64 * 1024);
    rc.ud = &r;
    rc.on_msg = responder_on_msg;
    conn_subscribe(&rc, O.subject, O.queue, 1);

    requester_t q;
    char inbox[64], wild[80];
    snprintf(inbox, sizeof inbox, "_INBOX.lg%d", (int)getpid());
    snprintf(wild, sizeof wild, "%s.*", inbox);
    conn_open(&qc, ai, "requester", 64 * 1024);
    qc.ud = &q;
    qc.on_msg = requester_on_msg;
    conn_subscribe(&qc, wild, NULL, 1);

    pthread_t th;
    if (pthread_create(&th, NULL, responder_main, &rc) != 0) die("pthread_create failed");

    long total = O.warmup + O.count;
    double *lat = malloc(sizeof(double) * (size_t)(O.count > 0 ? O.count : 1));
    size_t reqcap = 256 + (size_t)O.size;
    char *req = malloc(reqcap);
    if (!lat || !req) die("out of memory");
    double t_start = now_s();
    for (long i = 0; i < total; i++) {
        q.expect_len = (size_t)snprintf(q.expect, sizeof q.expect, "%s.%ld", inbox, i);
        int hl = snprintf(req, reqcap, "PUB %s %s %d\r\n", O.subject, q.expect, O.size);
        memcpy(req + hl, r.payload, (size_t)O.size);
        memcpy(req + hl + O.size, "\r\n", 2);
        uint64_t want = qc.msgs + 1;
        double t = now_s();
        write_all(&qc, req, (size_t)hl + (size_t)O.size + 2);
        /* the reply is complete once its payload has been skipped too */
        while (qc.msgs < want || qc.skip) {
            conn_read(&qc, 0);
            answer_pings(&qc);
        }
        double dt = now_s() - t;
        if (i >= O.warmup) lat[i - O.warmup] = dt * 1e6;
    }
    double elapsed = now_s() - t_start;
    atomic_store(&DONE, 1);
    shutdown(rc.fd, SHUT_RDWR);
    pthread_join(th, NULL);
    close(qc.fd);

    double sum = 0;
    for (long i = 0; i < O.count; i++) sum += lat[i];
    qsort(lat, (size_t)O.count, sizeof *lat, cmp_double);
    long n = O.count;
    long i50 = (n * 50 + 99) / 100 - 1, i99 = (n * 99 + 99) / 100 - 1;
    if (i50 < 0) i50 = 0;
    if (i99 < 0) i99 = 0;
    printf("{\"mode\":\"reqrep\",\"size\":%d,\"count\":%ld,\"warmup\":%ld,\"p50_us\":%.2f,\"p99_us\":%.2f,"
           "\"mean_us\":%.2f,\"min_us\":%.2f,\"max_us\":%.2f,\"rate\":%.1f}\n",
           O.size, n, O.warmup, lat[i50], lat[i99], sum / (double)n, lat[0], lat[n - 1],
           (double)total / elapsed);
    freeaddrinfo(ai);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * idle
 * ------------------------------------------------------------------------------------- */
static int run_idle(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)O.conns + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < (rlim_t)O.conns + 64)
            die("open-file limit %llu is too low for %d connections", (unsigned long long)rl.rlim_cur, O.conns);
    }
    struct addrinfo *ai = resolve();
    conn_t *cs = calloc((size_t)O.conns, sizeof *cs);
    if (!cs) die("out of memory");
    double t0 = now_s();
    /* one at a time: each handshake completes before the next connect, so the listen
     * backlog never overflows and no SYN is retried */
    for (int i = 0; i < O.conns; i++) {
        conn_open(&cs[i], ai, "idle", 4096);
        free(cs[i].line);
        cs[i].line = NULL;
        cs[i].linecap = 0;
    }
    double t_conn = now_s() - t0;
    printf("READY %d\n", O.conns);
    fflush(stdout);

    /* hold until the harness closes our stdin (or it disappears) */
    char b[256];
    struct pollfd pfd = {.fd = 0, .events = POLLIN};
    for (;;) {
        int pr = poll(&pfd, 1, 600 * 1000);
        if (pr < 0 && errno == EINTR) continue;
        if (pr == 0) die("idle: held connections for 600 s without being released");
        ssize_t r = read(0, b, sizeof b);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
    }
    for (int i = 0; i < O.conns; i++) close(cs[i].fd);
    printf("{\"mode\":\"idle\",\"conns\":%d,\"connect_s\":%.6f}\n", O.conns, t_conn);
    freeaddrinfo(ai);
    return 0;
}

/* --------------------------------------------------------------------------------------- */
static void usage(void) {
    fputs("usage: loadgen pubsub|reqrep|idle [--host H] [--port P] [--subject S] [--subs N]\n"
          "               [--queue Q] [--count M] [--size B] [--window W] [--warmup K]\n"
          "               [--conns N] [--timeout SEC]\n", stderr);
    exit(2);
}

static long num_arg(const char *name, const char *v, long min) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || x < min) {
        fprintf(stderr, "loadgen: bad value for %s: '%s'\n", name, v);
        exit(2);
    }
    return x;
}

int main(int argc, char **argv) {
    if (argc < 2) usage();
    O.mode = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *k = argv[i];
        if (i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(k, "--host")) O.host = v;
        else if (!strcmp(k, "--port")) O.port = (int)num_arg(k, v, 1);
        else if (!strcmp(k, "--subject")) O.subject = v;
        else if (!strcmp(k, "--queue")) O.queue = *v ? v : NULL;
        else if (!strcmp(k, "--subs")) O.subs = (int)num_arg(k, v, 1);
        else if (!strcmp(k, "--count")) O.count = num_arg(k, v, 1);
        else if (!strcmp(k, "--size")) O.size = (int)num_arg(k, v, 0);
        else if (!strcmp(k, "--window")) O.window = num_arg(k, v, 0);
        else if (!strcmp(k, "--warmup")) O.warmup = num_arg(k, v, 0);
        else if (!strcmp(k, "--conns")) O.conns = (int)num_arg(k, v, 1);
        else if (!strcmp(k, "--timeout")) O.timeout = (int)num_arg(k, v, 1);
        else usage();
    }
    signal(SIGPIPE, SIG_IGN); /* a closed server socket shows up as EPIPE from write() */
    if (!strcmp(O.mode, "pubsub")) return run_pubsub();
    if (!strcmp(O.mode, "reqrep")) return run_reqrep();
    if (!strcmp(O.mode, "idle")) return run_idle();
    usage();
    return 2;
}
