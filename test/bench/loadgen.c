/*
 * loadgen — native load generator for the meshbroker benchmark (test/bench/run.ts).
 *
 * Speaks the NATS text protocol over plain TCP or over WebSocket (optionally with
 * permessage-deflate), and MQTT 3.1.1 or 5 over TCP, so the same binary drives meshbroker,
 * nats-server and mosquitto; written in C so that on a 2-core machine the generator is not the
 * bottleneck.
 *
 *   gcc -O2 -o loadgen test/bench/loadgen.c -lpthread -lz -lssl -lcrypto
 *
 * Modes (result: one JSON line on stdout; errors: stderr and exit status 1):
 *   pubsub  --subs N [--queue Q] --count M --size B [--window W] [--batch BYTES]
 *           N subscriber connections + 1 publisher connection. The publisher writes pre-built
 *           ~64 KB batches of "PUB subj B" and never runs more than W messages ahead of
 *           delivery, so a server's slow-consumer limit (max_pending) is never what is measured.
 *           --sub-ports P1,P2,..: subscriber i connects to port P[i % n], the publisher to --port
 *           (a cluster: publisher and subscribers on different nodes). Before measuring, the
 *           publisher sends probes (payload of B+1 bytes, not counted) every 10 ms until every
 *           subscriber got one: the subscriptions' interest has reached the publisher's node (for
 *           a queue group, after 3 s one member having got a probe is enough).
 *   reqrep  --count M --size B [--warmup K] [--sub-ports P] [--requesters R]
 *           one responder (on the first of --sub-ports, if given), R requesters (1 by default,
 *           one connection and thread each) doing sequential requests, M in all after K warm-up
 *           requests each; reports p50/p99/p99.9 in µs. A probe request is repeated every 20 ms until it is
 *           answered (interest across a cluster), then the warm-up starts.
 *   idle    --conns N [--parallel K]
 *           opens N connections (CONNECT + PING, waits for every PONG), prints "READY N",
 *           holds them until stdin reaches EOF, then closes them. K threads set connections up
 *           (each one at a time, so K handshakes are in flight); connect_s is the time until the
 *           last one is set up, all held open.
 *   The NATS modes take --transport tcp|ws|ws-deflate (default tcp) [--path /]: with ws, --port
 *   is a WebSocket listener; the NATS protocol runs inside binary frames (one batch per frame),
 *   client frames masked (RFC 6455); ws-deflate negotiates permessage-deflate (RFC 7692) with
 *   no context takeover in either direction.
 *   mqtt    --subs N --count M --size B --qos 0|1 [--window W] [--inflight K] [--batch BYTES]
 *           [--sub-ports P1,P2,..]
 *           MQTT 3.1.1: N subscribers (clean session, SUBSCRIBE at --qos, PUBACK for every QoS 1
 *           delivery), 1 publisher writing batches of PUBLISH at --qos. Delivery stays at most W
 *           messages behind publishing; at QoS 1 the publisher also keeps at most K packet ids
 *           awaiting PUBACK. At the end every subscriber is sent PINGREQ, and the delivery count
 *           must be exact. --sub-ports as in pubsub (a cluster), with the same probes, sent at
 *           QoS 0; without it there are no probes (SUBACK already means subscribed).
 *   mqttidle --conns N [--parallel K]
 *           like idle, with MQTT connections (CONNECT, clean session, wait for CONNACK).
 *   The MQTT modes take --mqtt-version 4|5 (default 4 = 3.1.1): 5 sends empty property blocks,
 *   parses the v5 forms of CONNACK, SUBACK, PUBACK and PUBLISH, keeps QoS 1 packet ids in flight
 *   within the server's Receive Maximum, and reports a server DISCONNECT with its reason.
 * Common: --host H (127.0.0.1) --port P (4222) --subject S (bench; the MQTT topic too)
 *         --timeout SEC (30) --tls 0|1 (0; idle modes: TLS without certificate checks: NATS
 *         after the INFO, as nats-server 2.9 starts it; WebSocket and MQTT from the connect on)
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
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define CONNECT_LINE "CONNECT {\"verbose\":false,\"pedantic\":false,\"echo\":false}\r\nPING\r\n"
#define MAX_LINE (1u << 20) /* longest control line accepted (INFO can be long) */

#define MAX_SUB_PORTS 16

typedef struct {
    const char *mode, *host, *subject, *queue, *path;
    int sub_ports[MAX_SUB_PORTS], n_sub_ports;
    int port, subs, size, timeout, conns, qos;
    int parallel; /* idle modes: connections being set up at once (one thread each) */
    int tls;      /* idle and storm modes: TLS (see tls_start) */
    int ws_port, mqtt_port;   /* storm */
    const char *mix;          /* storm: transports, in turn */
    const char *user, *pass;  /* CONNECT credentials (NATS and MQTT), when set */
    int mqtt_version; /* 4: MQTT 3.1.1, 5: MQTT 5 */
    int ws; /* 0: NATS over TCP, 1: over WebSocket, 2: over WebSocket with permessage-deflate */
    long count, window, warmup, inflight, batch;
    int requesters; /* reqrep: requester connections, each on its own thread */
} opts_t;

static opts_t O = {
    .host = "127.0.0.1", .subject = "bench", .path = "/", .port = 4222, .subs = 1, .size = 128,
    .timeout = 30, .conns = 1000, .count = 100000, .window = 20000, .warmup = 1000,
    .inflight = 1000, .batch = 65536, .requesters = 1, .mqtt_version = 4, .parallel = 1, .mix = "nats,ws,mqtt",
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
    _Atomic uint64_t probes; /* pubsub: messages of another size than --size (see PROBING) */
    int info;
    msg_fn on_msg;
    void *ud;
    /* WebSocket (see the ws_* functions): 0 = plain TCP, 1 = frames, 2 = frames + deflate */
    int ws;
    int wstate;          /* 0: collecting a frame header, 1: in its payload */
    unsigned char wh[14];
    int whlen;
    uint64_t wleft;      /* payload bytes of the current frame not yet read */
    int wop, wfin;       /* opcode and FIN bit of the current frame */
    int wmsg;            /* inside a data message (possibly fragmented) */
    int wcomp, wzend;    /* that message is compressed / its deflate stream has ended */
    unsigned char wctl[125];
    int wctllen;
    z_stream zin, zout;
    unsigned char *ibuf; /* inflate output (reader side only) */
    size_t icap;
    unsigned char *dbuf, *wbuf; /* deflate output and the outgoing frame (under wmu) */
    size_t dcap, wcap;
    const void *cache_src; /* write_const: the immutable buffer compressed last, and its result */
    size_t cache_len, cache_zlen, cache_zcap;
    unsigned char *cache_z;
    uint32_t rng;        /* masking keys */
    /* counters: data messages received (compressed ones), their bytes on the wire and after
     * inflating; data bytes sent before and after deflating */
    uint64_t ws_msgs_in, ws_comp_in, ws_wire_in, ws_data_in, ws_data_out, ws_wire_out;
    pthread_mutex_t wmu; /* a subscriber's thread answers PINGs while main may send PING */
};

/* pubsub: a message whose size is not --size is a probe, counted apart (set by run_pubsub). */
static int PROBING;

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
        if (PROBING && size != (uint64_t)O.size) {
            atomic_fetch_add(&c->probes, 1);
            return;
        }
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

/* TLS (--tls 1): the session of each socket, by file descriptor; reads and writes go through
 * io_read/io_write, which use it when there is one. Certificates are not checked. */
#define MAX_TLS_FD 65536
static SSL_CTX *TLS_CTX;
static SSL *TLS_OF[MAX_TLS_FD];

static void tls_start(int fd, const char *name) {
    if (fd >= MAX_TLS_FD) die("%s: fd %d too large for TLS", name, fd);
    SSL *ssl = SSL_new(TLS_CTX);
    if (!ssl || !SSL_set_fd(ssl, fd)) die("%s: SSL_new failed", name);
    if (SSL_connect(ssl) != 1) {
        char err[256];
        ERR_error_string_n(ERR_get_error(), err, sizeof err);
        die("%s: TLS handshake failed: %s", name, err);
    }
    TLS_OF[fd] = ssl;
}

static ssize_t io_read(int fd, void *buf, size_t n, int flags) {
    SSL *ssl = fd < MAX_TLS_FD ? TLS_OF[fd] : NULL;
    if (!ssl) return recv(fd, buf, n, flags);
    if ((flags & MSG_DONTWAIT) && SSL_pending(ssl) == 0) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 0) == 0) {
            errno = EAGAIN;
            return -1;
        }
    }
    int r = SSL_read(ssl, buf, (int)(n > INT32_MAX ? INT32_MAX : n));
    if (r > 0) return r;
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_ZERO_RETURN) return 0;
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) errno = EAGAIN; /* SO_RCVTIMEO ran out */
    else if (e != SSL_ERROR_SYSCALL || errno == 0) errno = EPROTO;
    return r == 0 && e == SSL_ERROR_SYSCALL ? 0 : -1;
}

static ssize_t io_write(int fd, const void *buf, size_t n) {
    SSL *ssl = fd < MAX_TLS_FD ? TLS_OF[fd] : NULL;
    if (!ssl) return write(fd, buf, n);
    int r = SSL_write(ssl, buf, (int)(n > INT32_MAX ? INT32_MAX : n));
    if (r > 0) return r;
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) errno = EAGAIN;
    else if (e != SSL_ERROR_SYSCALL || errno == 0) errno = EPIPE;
    return -1;
}

/* A write failed: the server usually said why (-ERR) just before closing, so show that. */
static void die_write(int fd, const char *name, int err) {
    char buf[4096];
    ssize_t r = io_read(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
    char *e = NULL;
    if (r > 0) {
        buf[r] = 0;
        e = strstr(buf, "-ERR");
        if (e) e[strcspn(e, "\r\n")] = 0;
    }
    if (err == EAGAIN || err == EWOULDBLOCK)
        die("%s: write blocked for %d s (server not reading)", name, O.timeout);
    die("%s: write: %s%s%s", name, strerror(err), e ? "; server said: " : "", e ? e : "");
}

static void fd_write_all(int fd, const char *name, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = io_write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            die_write(fd, name, errno);
        }
        p += w;
        n -= (size_t)w;
    }
}

static void grow(unsigned char **b, size_t *cap, size_t need) {
    if (need <= *cap) return;
    size_t c = *cap ? *cap : 4096;
    while (c < need) c *= 2;
    *b = realloc(*b, c);
    if (!*b) die("out of memory");
    *cap = c;
}

/* ---------------------------------------------------------------------------------------
 * WebSocket client (RFC 6455) with optional permessage-deflate (RFC 7692). Each write is one
 * binary frame, masked with a fresh key. Server frames are parsed as they arrive: data is
 * passed to the NATS scanner (feed) as soon as it is read, so neither a frame nor a NATS
 * message has to be complete in one read. Compressed messages are inflated as they arrive;
 * the 00 00 ff ff the sender stripped is appended at the end of each message, and the
 * inflater is reset (no context takeover).
 * ------------------------------------------------------------------------------------- */
#define WS_KEY "dGhlIHNhbXBsZSBub25jZQ==" /* the nonce of RFC 6455 section 1.3: valid, fixed */
#define WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
#define WS_PMD_OFFER "permessage-deflate; client_no_context_takeover; server_no_context_takeover"

static void feed(conn_t *c, const char *buf, size_t n);

static uint32_t xorshift32(uint32_t *s) {
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* dst = src XOR the 4-byte masking key, 8 bytes at a time */
static void ws_mask(unsigned char *dst, const unsigned char *src, size_t n, const unsigned char key[4]) {
    unsigned char k8b[8] = {key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]};
    uint64_t k8, v;
    memcpy(&k8, k8b, 8);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&v, src + i, 8);
        v ^= k8;
        memcpy(dst + i, &v, 8);
    }
    for (; i < n; i++) dst[i] = src[i] ^ key[i & 3];
}

/* One complete (FIN) frame; the caller holds c->wmu. */
static void ws_send_frame(conn_t *c, int op, int rsv1, const unsigned char *p, size_t n) {
    grow(&c->wbuf, &c->wcap, n + 14);
    c->ws_wire_out += n;
    unsigned char *h = c->wbuf;
    size_t hl = 0;
    h[hl++] = (unsigned char)(0x80 | (rsv1 ? 0x40 : 0) | op);
    if (n < 126) {
        h[hl++] = (unsigned char)(0x80 | n);
    } else if (n <= 0xffff) {
        h[hl++] = 0x80 | 126;
        h[hl++] = (unsigned char)(n >> 8);
        h[hl++] = (unsigned char)n;
    } else {
        h[hl++] = 0x80 | 127;
        for (int sh = 56; sh >= 0; sh -= 8) h[hl++] = (unsigned char)((uint64_t)n >> sh);
    }
    uint32_t k = xorshift32(&c->rng);
    memcpy(h + hl, &k, 4);
    ws_mask(h + hl + 4, p, n, h + hl);
    hl += 4;
    fd_write_all(c->fd, c->name, c->wbuf, hl + n);
}

/* Deflates one message on its own (the deflater is reset first) and drops the 00 00 ff ff
 * that ends the sync flush. Returns the compressed length, in *out. */
static size_t ws_deflate(conn_t *c, const void *p, size_t n, unsigned char **out, size_t *cap) {
    if (deflateReset(&c->zout) != Z_OK) die("%s: deflateReset failed", c->name);
    grow(out, cap, deflateBound(&c->zout, n) + 64);
    c->zout.next_in = (Bytef *)p;
    c->zout.avail_in = (uInt)n;
    size_t len = 0;
    for (;;) {
        c->zout.next_out = *out + len;
        c->zout.avail_out = (uInt)(*cap - len);
        int rc = deflate(&c->zout, Z_SYNC_FLUSH);
        if (rc != Z_OK && rc != Z_BUF_ERROR) die("%s: deflate failed (%d)", c->name, rc);
        len = *cap - c->zout.avail_out;
        if (c->zout.avail_in == 0 && c->zout.avail_out > 0) break;
        grow(out, cap, *cap * 2);
    }
    if (len < 4 || memcmp(*out + len - 4, "\0\0\xff\xff", 4) != 0)
        die("%s: deflate output does not end with a sync flush", c->name);
    return len - 4;
}

/* One message as one binary frame. `cacheable`: the buffer's content never changes (the
 * publisher's batch), so its compressed form is computed once and reused. */
static void ws_send_message(conn_t *c, const void *p, size_t n, int cacheable) {
    pthread_mutex_lock(&c->wmu);
    c->ws_data_out += n;
    if (c->ws == 2) {
        if (cacheable) {
            if (c->cache_src != p || c->cache_len != n) {
                c->cache_zlen = ws_deflate(c, p, n, &c->cache_z, &c->cache_zcap);
                c->cache_src = p;
                c->cache_len = n;
            }
            ws_send_frame(c, 2, 1, c->cache_z, c->cache_zlen);
        } else {
            size_t zl = ws_deflate(c, p, n, &c->dbuf, &c->dcap);
            ws_send_frame(c, 2, 1, c->dbuf, zl);
        }
    } else {
        ws_send_frame(c, 2, 0, p, n);
    }
    pthread_mutex_unlock(&c->wmu);
}

/* Payload bytes of a data frame: to the NATS scanner, inflated first if compressed. */
static void ws_data(conn_t *c, const unsigned char *p, size_t n) {
    if (!c->wcomp) {
        c->ws_data_in += n;
        feed(c, (const char *)p, n);
        return;
    }
    if (c->wzend) return; /* the deflate stream had its final block: nothing follows */
    c->zin.next_in = (Bytef *)p;
    c->zin.avail_in = (uInt)n;
    for (;;) {
        c->zin.next_out = c->ibuf;
        c->zin.avail_out = (uInt)c->icap;
        int rc = inflate(&c->zin, Z_SYNC_FLUSH);
        size_t got = c->icap - c->zin.avail_out;
        c->ws_data_in += got;
        if (got) feed(c, (const char *)c->ibuf, got);
        if (rc == Z_STREAM_END) {
            c->wzend = 1;
            return;
        }
        if (rc == Z_BUF_ERROR) return; /* all input used, no more output yet */
        if (rc != Z_OK) die("%s: inflate: %s (%d)", c->name, c->zin.msg ? c->zin.msg : "error", rc);
        if (c->zin.avail_in == 0 && c->zin.avail_out > 0) return;
    }
}

static void ws_frame_end(conn_t *c) {
    c->wstate = 0;
    c->whlen = 0;
    if (c->wop >= 8) { /* control frames may come between the fragments of a message */
        if (c->wop == 8) {
            int code = c->wctllen >= 2 ? (c->wctl[0] << 8 | c->wctl[1]) : 1005;
            int rl = c->wctllen > 2 ? c->wctllen - 2 : 0;
            die("%s: server closed the WebSocket (close code %d%s%.*s)", c->name, code, rl ? ": " : "", rl,
                (const char *)c->wctl + 2);
        }
        if (c->wop == 9) {
            pthread_mutex_lock(&c->wmu);
            ws_send_frame(c, 0xA, 0, c->wctl, (size_t)c->wctllen);
            pthread_mutex_unlock(&c->wmu);
        }
        return;
    }
    if (c->wfin) {
        if (c->wcomp) {
            static const unsigned char tail[4] = {0, 0, 0xff, 0xff};
            ws_data(c, tail, 4);
            if (inflateReset(&c->zin) != Z_OK) die("%s: inflateReset failed", c->name);
        }
        c->wmsg = c->wcomp = c->wzend = 0;
    }
}

static void ws_header(conn_t *c) {
    unsigned char b0 = c->wh[0], b1 = c->wh[1];
    int op = b0 & 0x0f, rsv1 = (b0 & 0x40) != 0;
    if (b0 & 0x30) die("%s: WebSocket frame with RSV2/RSV3 set (0x%02x)", c->name, b0);
    if (b1 & 0x80) die("%s: masked WebSocket frame from the server", c->name);
    uint64_t len = b1 & 0x7f;
    if (len == 126) len = (uint64_t)c->wh[2] << 8 | c->wh[3];
    else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++) len = len << 8 | c->wh[2 + i];
    }
    c->wop = op;
    c->wfin = (b0 & 0x80) != 0;
    c->wleft = len;
    c->wstate = 1;
    if (op >= 8) {
        if (op > 10) die("%s: WebSocket frame with unknown opcode %d", c->name, op);
        if (!c->wfin || len > 125 || rsv1)
            die("%s: bad WebSocket control frame (opcode %d, %llu bytes)", c->name, op, (unsigned long long)len);
        c->wctllen = 0;
    } else if (op == 0) {
        if (!c->wmsg) die("%s: WebSocket continuation frame outside a message", c->name);
        if (rsv1) die("%s: WebSocket continuation frame with RSV1 set", c->name);
    } else if (op == 1 || op == 2) {
        if (c->wmsg) die("%s: new WebSocket data frame inside a fragmented message", c->name);
        if (rsv1 && c->ws != 2) die("%s: compressed WebSocket frame, but no compression was negotiated", c->name);
        c->wmsg = 1;
        c->wcomp = rsv1;
        c->wzend = 0;
        c->ws_msgs_in++;
        c->ws_comp_in += (uint64_t)rsv1;
    } else {
        die("%s: WebSocket frame with unknown opcode %d", c->name, op);
    }
    if (len == 0) ws_frame_end(c);
}

static void ws_feed(conn_t *c, const unsigned char *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (c->wstate == 0) {
            c->wh[c->whlen++] = p[i++];
            if (c->whlen < 2) continue;
            int l7 = c->wh[1] & 0x7f;
            int need = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + ((c->wh[1] & 0x80) ? 4 : 0);
            if (c->whlen == need) ws_header(c);
            continue;
        }
        size_t take = n - i < c->wleft ? n - i : (size_t)c->wleft;
        if (c->wop >= 8) {
            memcpy(c->wctl + c->wctllen, p + i, take);
            c->wctllen += (int)take;
        } else {
            c->ws_wire_in += take;
            ws_data(c, p + i, take);
        }
        i += take;
        c->wleft -= take;
        if (c->wleft == 0) ws_frame_end(c);
    }
}

/* The value of header `name` in an HTTP head (NUL-terminated), or NULL; copied into out. */
static const char *http_header(const char *head, const char *name, char *out, size_t outsz) {
    size_t nl = strlen(name);
    for (const char *l = strstr(head, "\r\n"); l && l[2]; l = strstr(l + 2, "\r\n")) {
        const char *h = l + 2;
        if (strncasecmp(h, name, nl) != 0 || h[nl] != ':') continue;
        h += nl + 1;
        while (*h == ' ' || *h == '\t') h++;
        size_t vl = strcspn(h, "\r\n");
        while (vl && (h[vl - 1] == ' ' || h[vl - 1] == '\t')) vl--;
        if (vl >= outsz) vl = outsz - 1;
        memcpy(out, h, vl);
        out[vl] = 0;
        return out;
    }
    return NULL;
}

/* HTTP upgrade; bytes after the response head are already frames and go to ws_feed. */
static void ws_handshake(conn_t *c) {
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: " WS_KEY "\r\nSec-WebSocket-Version: 13\r\n%s%s%s\r\n",
                     O.path, O.host, O.port, c->ws == 2 ? "Sec-WebSocket-Extensions: " : "",
                     c->ws == 2 ? WS_PMD_OFFER : "", c->ws == 2 ? "\r\n" : "");
    if (n <= 0 || (size_t)n >= sizeof req) die("WebSocket path too long");
    fd_write_all(c->fd, c->name, req, (size_t)n);
    size_t have = 0;
    char *end = NULL;
    while (!end) {
        if (have + 1 >= c->rcap) die("%s: WebSocket upgrade response longer than %zu bytes", c->name, c->rcap);
        ssize_t r = io_read(c->fd, c->rbuf + have, c->rcap - 1 - have, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            die("%s: no WebSocket upgrade response within %d s", c->name, O.timeout);
        if (r < 0) die("%s: read: %s", c->name, strerror(errno));
        if (r == 0)
            die("%s: connection closed during the WebSocket upgrade%s%.*s", c->name, have ? "; got: " : "",
                (int)(have > 200 ? 200 : have), c->rbuf);
        have += (size_t)r;
        end = memmem(c->rbuf, have, "\r\n\r\n", 4);
    }
    size_t hlen = (size_t)(end - c->rbuf) + 4;
    char *head = strndup(c->rbuf, hlen - 2); /* keeps the last header's CRLF */
    if (!head) die("out of memory");
    if (strncmp(head, "HTTP/1.1 101", 12) != 0)
        die("%s: WebSocket upgrade refused: %.*s", c->name, (int)strcspn(head, "\r\n"), head);
    char val[512];
    if (!http_header(head, "Sec-WebSocket-Accept", val, sizeof val) || strcmp(val, WS_ACCEPT) != 0)
        die("%s: bad Sec-WebSocket-Accept '%s' (expected " WS_ACCEPT ")", c->name,
            http_header(head, "Sec-WebSocket-Accept", val, sizeof val) ? val : "");
    const char *ext = http_header(head, "Sec-WebSocket-Extensions", val, sizeof val);
    if (c->ws == 2) {
        if (!ext || !strcasestr(ext, "permessage-deflate"))
            die("%s: the server did not accept permessage-deflate (is compression enabled?); "
                "Sec-WebSocket-Extensions: %s", c->name, ext ? ext : "(none)");
        /* we reset the inflater after every message: the server must not keep its context */
        if (!strcasestr(ext, "server_no_context_takeover"))
            die("%s: the server did not agree to server_no_context_takeover: %s", c->name, ext);
    } else if (ext && strcasestr(ext, "permessage-deflate")) {
        die("%s: the server enabled permessage-deflate, which was not offered", c->name);
    }
    free(head);
    ws_feed(c, (unsigned char *)c->rbuf + hlen, have - hlen);
}

/* NATS protocol bytes out: as they are over TCP, one binary frame each over WebSocket. */
static void write_all(conn_t *c, const char *p, size_t n) {
    if (c->ws) ws_send_message(c, p, n, 0);
    else fd_write_all(c->fd, c->name, p, n);
}

/* write_all for a buffer whose content never changes (compressed once over ws-deflate). */
static void write_const(conn_t *c, const char *p, size_t n) {
    if (c->ws) ws_send_message(c, p, n, 1);
    else fd_write_all(c->fd, c->name, p, n);
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
        ssize_t r = io_read(c->fd, c->rbuf, c->rcap, 0);
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
        if (c->ws) ws_feed(c, (const unsigned char *)c->rbuf, (size_t)r);
        else feed(c, c->rbuf, (size_t)r);
        return r;
    }
}

static void wait_pongs(conn_t *c, uint64_t target) {
    while (c->pongs < target) {
        conn_read(c, 0);
        answer_pings(c);
    }
}

static struct addrinfo *resolve_port(int p) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", p);
    int rc = getaddrinfo(O.host, port, &hints, &ai);
    if (rc != 0) die("resolve %s: %s", O.host, gai_strerror(rc));
    return ai;
}

static struct addrinfo *resolve(void) { return resolve_port(O.port); }

/* The address of subscriber i: --sub-ports round robin, else --port. */
static struct addrinfo *resolve_sub(int i) {
    return O.n_sub_ports ? resolve_port(O.sub_ports[i % O.n_sub_ports]) : resolve();
}

/* Connect, read INFO, send CONNECT + PING, wait for PONG. */
/* A connected TCP socket with Nagle off and O.timeout on reads and writes. */
static int tcp_connect(const struct addrinfo *ai, const char *name) {
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {.tv_sec = O.timeout};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) die("%s: connect %s:%d: %s", name, O.host, O.port, strerror(errno));
    return fd;
}

/* Connect (and upgrade to WebSocket if ws: 1 plain frames, 2 with deflate), read INFO, send
 * CONNECT + PING, wait for PONG. */
static void conn_open_ws(conn_t *c, const struct addrinfo *ai, const char *name, size_t rcap, int ws) {
    memset(c, 0, sizeof *c);
    c->name = name;
    c->rcap = rcap;
    c->rbuf = malloc(rcap);
    if (!c->rbuf) die("out of memory");
    pthread_mutex_init(&c->wmu, NULL);
    c->fd = tcp_connect(ai, name);
    if (O.tls && ws) tls_start(c->fd, name);
    if (ws) {
        c->ws = ws;
        c->rng = (uint32_t)getpid() * 2654435761u ^ (uint32_t)c->fd * 40503u ^ (uint32_t)(now_s() * 1e6);
        if (!c->rng) c->rng = 1;
        if (c->ws == 2) {
            c->icap = 64 * 1024;
            c->ibuf = malloc(c->icap);
            if (!c->ibuf) die("out of memory");
            if (inflateInit2(&c->zin, -15) != Z_OK ||
                deflateInit2(&c->zout, Z_BEST_SPEED, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
                die("zlib init failed");
        }
        ws_handshake(c);
    }
    while (!c->info) conn_read(c, 0);
    if (O.tls && !ws) tls_start(c->fd, name);
    if (O.user) {
        char line[1024];
        int n = snprintf(line, sizeof line, "CONNECT {\"verbose\":false,\"pedantic\":false,\"echo\":false,"
                         "\"user\":\"%s\",\"pass\":\"%s\"}\r\nPING\r\n", O.user, O.pass ? O.pass : "");
        if (n <= 0 || (size_t)n >= sizeof line) die("credentials too long");
        write_all(c, line, (size_t)n);
    } else {
        write_all(c, CONNECT_LINE, sizeof CONNECT_LINE - 1);
    }
    wait_pongs(c, c->pongs + 1);
}

static void conn_open(conn_t *c, const struct addrinfo *ai, const char *name, size_t rcap) {
    conn_open_ws(c, ai, name, rcap, O.ws);
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
typedef struct mq mq_t;

typedef struct {
    conn_t c;
    mq_t *m; /* mqtt mode */
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

/* What the main thread waits for in the window (wait_window): each subscriber's count
 * (fan-out) or the group's total (queue group) reaching WAKE_AT. */
static _Atomic uint64_t WAKE_AT = UINT64_MAX;

/* A subscriber's thread after a read: publish its counters, and wake the main thread only
 * when something it waits for may have happened (a server that writes one message per
 * syscall would otherwise cost a wake-up per message). */
static void sub_progress(sub_t *s, uint64_t msgs, uint64_t d, uint64_t pongs, int pong_changed) {
    int wake = pong_changed;
    if (d) {
        atomic_store(&s->got, msgs);
        uint64_t prev = atomic_fetch_add(&TOTAL_GOT, d);
        if (prev < EXPECTED && prev + d >= EXPECTED) {
            atomic_store(&T_END, now_s());
            wake = 1;
        }
        /* seq_cst: either main sees our count when it checks, or we see its WAKE_AT here */
        uint64_t need = atomic_load(&WAKE_AT);
        if (O.queue ? prev < need && prev + d >= need : msgs - d < need && msgs >= need) wake = 1;
    }
    if (pong_changed) atomic_store(&s->pongs, pongs); /* after got: pong implies got is current */
    if (wake) {
        pthread_mutex_lock(&MU);
        pthread_cond_broadcast(&CV);
        pthread_mutex_unlock(&MU);
    }
}

static void *sub_main(void *arg) {
    sub_t *s = arg;
    for (;;) {
        uint64_t before = s->c.msgs, pb = s->c.pongs;
        if (conn_read(&s->c, 1) == 0) { /* EOF: expected once main has shut the socket down */
            if (atomic_load(&DONE)) return NULL;
            die("%s: connection closed by server", s->c.name);
        }
        answer_pings(&s->c);
        sub_progress(s, s->c.msgs, s->c.msgs - before, s->c.pongs, s->c.pongs != pb);
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

/* Flow control: wait until `need` published messages are known to be delivered. */
static void wait_window(uint64_t need) {
    atomic_store(&WAKE_AT, need);
    wait_progress(pred_window, need, "subscribers to catch up");
}
/* T_END too: the subscriber that completes the count stores it just after its increment, and
 * wakes us once it has (reading it earlier gave a 0 end time, and a negative rate). */
static int pred_all(uint64_t unused) {
    (void)unused;
    return atomic_load(&TOTAL_GOT) >= EXPECTED && atomic_load(&T_END) > 0;
}
static int pred_subs_ponged(uint64_t target) {
    for (int i = 0; i < O.subs; i++)
        if (atomic_load(&SUBS[i].pongs) < target) return 0;
    return 1;
}

static uint64_t sub_probes(sub_t *s); /* probes subscriber s got (NATS or MQTT) */

/* Probes every 10 ms until every subscriber got one (a queue group: any member, after 3 s);
 * returns how long that took. On one server the first probe does it. `send` writes one probe,
 * a message of --size + 1 bytes, from the publisher `pub`. */
static double probe_interest(void (*send)(void *pub, const char *payload, int len), void *pub) {
    PROBING = 1;
    int plen = O.size + 1;
    char *payload = make_payload(plen);
    double t0 = now_s();
    for (;;) {
        int all = 1, any = 0;
        for (int i = 0; i < O.subs; i++) {
            if (sub_probes(&SUBS[i])) any = 1;
            else all = 0;
        }
        double dt = now_s() - t0;
        if (all || (O.queue && any && dt > 3)) break;
        if (dt > O.timeout) die("interest did not reach the publisher's server within %d s (probes unanswered)", O.timeout);
        send(pub, payload, plen);
        struct timespec ts = {.tv_nsec = 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    free(payload);
    return now_s() - t0;
}

static void nats_probe(void *pub, const char *payload, int len) {
    char *msg = malloc((size_t)len + 300);
    if (!msg) die("out of memory");
    int hl = snprintf(msg, 300, "PUB %s %d\r\n", O.subject, len);
    memcpy(msg + hl, payload, (size_t)len);
    memcpy(msg + hl + len, "\r\n", 2);
    write_all(pub, msg, (size_t)hl + (size_t)len + 2);
    free(msg);
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
        struct addrinfo *sai = resolve_sub(i);
        conn_open(&SUBS[i].c, sai, names[i], 256 * 1024);
        freeaddrinfo(sai);
        conn_subscribe(&SUBS[i].c, O.subject, O.queue, 1);
        atomic_store(&SUBS[i].pongs, SUBS[i].c.pongs);
    }
    conn_t pub;
    conn_open(&pub, ai, "pub", 64 * 1024);
    for (int i = 0; i < O.subs; i++)
        if (pthread_create(&SUBS[i].th, NULL, sub_main, &SUBS[i]) != 0) die("pthread_create failed");
    double probe_s = probe_interest(nats_probe, &pub);

    /* one pre-built ~64 KB batch of identical PUBs */
    char hdr[300];
    int hl = snprintf(hdr, sizeof hdr, "PUB %s %d\r\n", O.subject, O.size);
    size_t mlen = (size_t)hl + (size_t)O.size + 2;
    long per = (long)((size_t)O.batch / mlen);
    if (per < 1) per = 1;
    if (O.window > 0 && per > O.window) per = O.window; /* a batch never waits for itself */
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
            wait_window(sent + n - (uint64_t)O.window);
        write_const(&pub, batch, (size_t)n * mlen);
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
    /* WebSocket: how much of what the subscribers received was compressed, and by how much */
    char wsinfo[512] = "";
    if (O.ws) {
        uint64_t m = 0, cm = 0, wire = 0, data = 0;
        for (int i = 0; i < O.subs; i++) {
            m += SUBS[i].c.ws_msgs_in;
            cm += SUBS[i].c.ws_comp_in;
            wire += SUBS[i].c.ws_wire_in;
            data += SUBS[i].c.ws_data_in;
        }
        snprintf(wsinfo, sizeof wsinfo,
                 "\"ws_msgs_in\":%llu,\"ws_compressed_in\":%llu,\"ws_wire_in\":%llu,\"ws_data_in\":%llu,"
                 "\"ws_data_out\":%llu,\"ws_wire_out\":%llu,",
                 (unsigned long long)m, (unsigned long long)cm, (unsigned long long)wire, (unsigned long long)data,
                 (unsigned long long)pub.ws_data_out, (unsigned long long)pub.ws_wire_out);
    }
    printf("{\"mode\":\"pubsub\",%s\"subs\":%d,\"queue\":%s,\"size\":%d,\"published\":%ld,"
           "\"delivered\":%llu,\"pub_rate\":%.1f,\"recv_rate\":%.1f,\"pub_s\":%.6f,\"elapsed_s\":%.6f,"
           "\"cpu_s\":%.3f,\"probe_s\":%.3f,\"per_sub\":[%s]}\n",
           wsinfo, O.subs, O.queue ? "true" : "false", O.size, O.count, (unsigned long long)total,
           (double)O.count / (t_pub - t0), (double)total / (t_end - t0), t_pub - t0, t_end - t0, cpu, probe_s, per_sub);
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
    char probe[80]; /* "<inbox>.p": replies to probe requests, which may come late */
    size_t probe_len;
    uint64_t probe_replies;
} requester_t;

static void requester_on_msg(conn_t *c, const char *line, size_t len) {
    requester_t *q = c->ud;
    if (q->probe_len && len > 4 + q->probe_len && memcmp(line + 4, q->probe, q->probe_len) == 0 &&
        line[4 + q->probe_len] == ' ') {
        q->probe_replies++;
        c->msgs--; /* not a reply to the request in flight */
        return;
    }
    /* "MSG <inbox> ..." must name the inbox of the request in flight */
    if (len < 4 + q->expect_len + 1 || memcmp(line + 4, q->expect, q->expect_len) != 0 ||
        line[4 + q->expect_len] != ' ')
        die("requester: reply for the wrong request: '%.*s' (expected %s)", (int)len, line, q->expect);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Repeats a probe request every 20 ms until one is answered: the responder's interest reached
 * the requester's server, and the requester's inbox the responder's. */
static void probe_responder(conn_t *qc, requester_t *q, const char *inbox, const char *payload) {
    q->probe_len = (size_t)snprintf(q->probe, sizeof q->probe, "%s.p", inbox);
    char *req = malloc(256 + (size_t)O.size);
    if (!req) die("out of memory");
    int hl = snprintf(req, 256, "PUB %s %s %d\r\n", O.subject, q->probe, O.size);
    memcpy(req + hl, payload, (size_t)O.size);
    memcpy(req + hl + O.size, "\r\n", 2);
    double t0 = now_s();
    while (!q->probe_replies) {
        if (now_s() - t0 > O.timeout) die("no reply to a probe request within %d s", O.timeout);
        write_all(qc, req, (size_t)hl + (size_t)O.size + 2);
        struct pollfd pfd = {.fd = qc->fd, .events = POLLIN};
        if (poll(&pfd, 1, 20) > 0) {
            conn_read(qc, 0);
            answer_pings(qc);
        }
    }
    free(req);
}

/* One requester: its own connection and inbox, sequential requests; latencies of the
 * requests after its warm-up go to lat[0..count). */
typedef struct {
    conn_t c;
    requester_t q;
    char inbox[64];
    long warmup, count;
    double *lat;
    const char *payload;
    pthread_barrier_t *start; /* every requester starts its timed loop together */
} requester_run_t;

static void requester_open(requester_run_t *w, const struct addrinfo *ai, int i) {
    char wild[80];
    snprintf(w->inbox, sizeof w->inbox, "_INBOX.lg%d.%d", (int)getpid(), i);
    snprintf(wild, sizeof wild, "%s.*", w->inbox);
    conn_open(&w->c, ai, "requester", 64 * 1024);
    w->c.ud = &w->q;
    w->c.on_msg = requester_on_msg;
    conn_subscribe(&w->c, wild, NULL, 1);
}

static void *requester_main(void *arg) {
    requester_run_t *w = arg;
    conn_t *qc = &w->c;
    requester_t *q = &w->q;
    size_t reqcap = 256 + (size_t)O.size;
    char *req = malloc(reqcap);
    if (!req) die("out of memory");
    probe_responder(qc, q, w->inbox, w->payload);
    pthread_barrier_wait(w->start);
    for (long i = 0, total = w->warmup + w->count; i < total; i++) {
        q->expect_len = (size_t)snprintf(q->expect, sizeof q->expect, "%s.%ld", w->inbox, i);
        int hl = snprintf(req, reqcap, "PUB %s %s %d\r\n", O.subject, q->expect, O.size);
        memcpy(req + hl, w->payload, (size_t)O.size);
        memcpy(req + hl + O.size, "\r\n", 2);
        uint64_t want = qc->msgs + 1;
        double t = now_s();
        write_all(qc, req, (size_t)hl + (size_t)O.size + 2);
        /* the reply is complete once its payload has been skipped too */
        while (qc->msgs < want || qc->skip) {
            conn_read(qc, 0);
            answer_pings(qc);
        }
        if (i >= w->warmup) w->lat[i - w->warmup] = (now_s() - t) * 1e6;
    }
    free(req);
    return NULL;
}

/* The nearest-rank percentile of n sorted latencies, in thousandths (999: p99.9). */
static double percentile(const double *sorted, long n, long per_mille) {
    long i = (n * per_mille + 999) / 1000 - 1;
    return sorted[i < 0 ? 0 : i];
}

static int run_reqrep(void) {
    struct addrinfo *ai = resolve();
    responder_t r = {.payload = make_payload(O.size)};
    conn_t rc;
    struct addrinfo *rai = resolve_sub(0);
    conn_open(&rc, rai, "responder", 64 * 1024);
    freeaddrinfo(rai);
    rc.ud = &r;
    rc.on_msg = responder_on_msg;
    conn_subscribe(&rc, O.subject, O.queue, 1);

    /* --count is the total over all requesters; each does its share after its own warm-up */
    int nq = O.requesters;
    long share = O.count / nq, n = share * nq;
    if (share < 1) die("--count must be at least --requesters");
    double *lat = malloc(sizeof(double) * (size_t)n);
    requester_run_t *ws = calloc((size_t)nq, sizeof *ws);
    pthread_t *qth = calloc((size_t)nq, sizeof *qth);
    pthread_barrier_t start;
    if (!lat || !ws || !qth) die("out of memory");
    pthread_barrier_init(&start, NULL, (unsigned)nq + 1);
    for (int i = 0; i < nq; i++) {
        ws[i] = (requester_run_t){.warmup = O.warmup, .count = share, .lat = lat + share * i,
                                  .payload = r.payload, .start = &start};
        requester_open(&ws[i], ai, i);
    }
    pthread_t th;
    if (pthread_create(&th, NULL, responder_main, &rc) != 0) die("pthread_create failed");
    for (int i = 0; i < nq; i++)
        if (pthread_create(&qth[i], NULL, requester_main, &ws[i]) != 0) die("pthread_create failed");
    pthread_barrier_wait(&start);
    double t_start = now_s();
    for (int i = 0; i < nq; i++) pthread_join(qth[i], NULL);
    double elapsed = now_s() - t_start;
    atomic_store(&DONE, 1);
    shutdown(rc.fd, SHUT_RDWR);
    pthread_join(th, NULL);
    for (int i = 0; i < nq; i++) close(ws[i].c.fd);

    double sum = 0;
    for (long i = 0; i < n; i++) sum += lat[i];
    qsort(lat, (size_t)n, sizeof *lat, cmp_double);
    printf("{\"mode\":\"reqrep\",\"size\":%d,\"requesters\":%d,\"count\":%ld,\"warmup\":%ld,"
           "\"p50_us\":%.2f,\"p99_us\":%.2f,\"p999_us\":%.2f,\"mean_us\":%.2f,\"min_us\":%.2f,"
           "\"max_us\":%.2f,\"rate\":%.1f}\n",
           O.size, nq, n, O.warmup, percentile(lat, n, 500), percentile(lat, n, 990),
           percentile(lat, n, 999), sum / (double)n, lat[0], lat[n - 1],
           (double)(n + O.warmup * nq) / elapsed);
    pthread_barrier_destroy(&start);
    free(ws);
    free(qth);
    free(lat);
    freeaddrinfo(ai);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * idle
 * ------------------------------------------------------------------------------------- */
static void raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)O.conns + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < (rlim_t)O.conns + 64)
            die("open-file limit %llu is too low for %d connections", (unsigned long long)rl.rlim_cur, O.conns);
    }
}

/* Hold the connections until the harness closes our stdin (or it disappears). */
static void hold_until_released(void) {
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
}

/* Opens connection i of an idle mode (NATS or MQTT). */
typedef void (*open_fn)(void *conns, int i);

typedef struct {
    open_fn open;
    void *conns;
    int from, to;
} opener_t;

static void *opener_main(void *arg) {
    opener_t *o = arg;
    for (int i = o->from; i < o->to; i++) o->open(o->conns, i);
    return NULL;
}

/* Opens O.conns connections with O.parallel threads, each one handshake at a time, so the listen
 * backlog never overflows and no SYN is retried; returns the seconds it took. */
static double open_all(open_fn open, void *conns) {
    int k = O.parallel < O.conns ? O.parallel : O.conns;
    pthread_t th[k];
    opener_t op[k];
    double t0 = now_s();
    for (int t = 0; t < k; t++) {
        op[t] = (opener_t){.open = open, .conns = conns, .from = (int)((long)O.conns * t / k), .to = (int)((long)O.conns * (t + 1) / k)};
        if (pthread_create(&th[t], NULL, opener_main, &op[t]) != 0) die("pthread_create failed");
    }
    for (int t = 0; t < k; t++) pthread_join(th[t], NULL);
    return now_s() - t0;
}

static struct addrinfo *IDLE_AI;

static void idle_open(void *conns, int i) {
    conn_t *c = (conn_t *)conns + i;
    conn_open(c, IDLE_AI, "idle", 4096);
    free(c->line);
    c->line = NULL;
    c->linecap = 0;
}

/* The end of an idle mode: READY, hold, close, the result line. */
static void idle_finish(const char *mode, const int *fds, size_t stride, double t_conn) {
    printf("READY %d\n", O.conns);
    fflush(stdout);
    hold_until_released();
    for (int i = 0; i < O.conns; i++) close(*(const int *)((const char *)fds + stride * (size_t)i));
    printf("{\"mode\":\"%s\",\"conns\":%d,\"parallel\":%d,\"connect_s\":%.6f,\"connects_per_s\":%.1f}\n", mode, O.conns,
           O.parallel, t_conn, O.conns / t_conn);
}

/* An idle mode: O.conns connections of `size` bytes each (the socket at `fd_at`), opened by `open`. */
static int run_idle_mode(const char *mode, open_fn open, size_t size, size_t fd_at) {
    raise_nofile();
    IDLE_AI = resolve();
    char *conns = calloc((size_t)O.conns, size);
    if (!conns) die("out of memory");
    double t_conn = open_all(open, conns);
    idle_finish(mode, (const int *)(conns + fd_at), size, t_conn);
    freeaddrinfo(IDLE_AI);
    return 0;
}

static int run_idle(void) { return run_idle_mode("idle", idle_open, sizeof(conn_t), offsetof(conn_t, fd)); }

/* ---------------------------------------------------------------------------------------
 * MQTT 3.1.1 and 5 (modes mqtt and mqttidle): CONNECT/CONNACK, SUBSCRIBE/SUBACK, PUBLISH at
 * QoS 0 and 1, PUBACK both ways, PINGREQ/PINGRESP only to flush at the end. Complete packets
 * are handled in the read buffer; the start of one split across reads is moved to the front.
 * One code path for both versions: V5 says where a property block or reason code is present.
 * ------------------------------------------------------------------------------------- */
#define V5 (O.mqtt_version == 5)
#define MQTT_KEEPALIVE 300 /* seconds; longer than any hold */

struct mq {
    int fd;
    const char *name;
    unsigned char *rbuf;
    size_t rcap, rlen;
    uint64_t msgs, dups, pingresps, acked;
    _Atomic uint64_t probes; /* PUBLISHes of --size + 1 bytes while PROBING (at QoS 0) */
    int connacked, subacked;
    unsigned char *ack; /* PUBACKs owed for QoS 1 deliveries, written after each read */
    size_t acklen, ackcap;
    uint8_t *inflight; /* publisher at QoS 1: packet ids awaiting PUBACK, one byte each */
    uint64_t ninflight;
    unsigned receive_max; /* v5 CONNACK Receive Maximum: QoS 1 PUBLISHes the server takes at once */
    /* ACK at once what a blocking read gets (Linux clears quick ack by itself, so per read).
     * For the QoS 1 publisher only, waiting for PUBACKs: a server that leaves Nagle on
     * (mosquitto by default) holds its next PUBACKs until the last segment is acknowledged, and
     * a delayed ACK would stall it up to 40 ms, every batch under mosquitto's Receive Maximum
     * of 20. Subscribers keep delayed ACKs: ACKing each small segment slows mosquitto's QoS 0
     * deliveries by about 40%. */
    int quickack;
    pthread_mutex_t wmu; /* the subscriber thread writes PUBACKs while main sends PINGREQ */
};

static const char *connack_reason(int rc) {
    static const char *r[] = {"accepted", "unacceptable protocol version", "identifier rejected",
                              "server unavailable", "bad user name or password", "not authorized"};
    return rc >= 0 && rc <= 5 ? r[rc] : "unknown return code";
}

/* MQTT 5 reason codes (spec 2.4) a server may send in CONNACK, SUBACK, PUBACK or DISCONNECT. */
static const char *v5_reason(int rc) {
    switch (rc) {
    case 0x00: return "success";
    case 0x01: return "granted QoS 1";
    case 0x02: return "granted QoS 2";
    case 0x04: return "disconnect with will message";
    case 0x10: return "no matching subscribers";
    case 0x80: return "unspecified error";
    case 0x81: return "malformed packet";
    case 0x82: return "protocol error";
    case 0x83: return "implementation specific error";
    case 0x84: return "unsupported protocol version";
    case 0x85: return "client identifier not valid";
    case 0x86: return "bad user name or password";
    case 0x87: return "not authorized";
    case 0x88: return "server unavailable";
    case 0x89: return "server busy";
    case 0x8a: return "banned";
    case 0x8b: return "server shutting down";
    case 0x8c: return "bad authentication method";
    case 0x8d: return "keep alive timeout";
    case 0x8e: return "session taken over";
    case 0x8f: return "topic filter invalid";
    case 0x90: return "topic name invalid";
    case 0x91: return "packet identifier in use";
    case 0x93: return "receive maximum exceeded";
    case 0x94: return "topic alias invalid";
    case 0x95: return "packet too large";
    case 0x96: return "message rate too high";
    case 0x97: return "quota exceeded";
    case 0x98: return "administrative action";
    case 0x99: return "payload format invalid";
    case 0x9a: return "retain not supported";
    case 0x9b: return "QoS not supported";
    case 0x9c: return "use another server";
    case 0x9d: return "server moved";
    case 0x9e: return "shared subscriptions not supported";
    case 0x9f: return "connection rate exceeded";
    case 0xa0: return "maximum connect time";
    case 0xa1: return "subscription identifiers not supported";
    case 0xa2: return "wildcard subscriptions not supported";
    default: return "unknown reason code";
    }
}

/* Decodes a variable byte integer from p[0..n); returns its length, 0 if malformed or cut. */
static size_t mq_get_varint(const unsigned char *p, size_t n, uint32_t *v) {
    *v = 0;
    for (size_t k = 0; k < 4 && k < n; k++) {
        *v |= (uint32_t)(p[k] & 0x7f) << (7 * k);
        if (!(p[k] & 0x80)) return k + 1;
    }
    return 0;
}

/* What the loadgen needs from a v5 property block; the rest is checked for form and skipped. */
typedef struct {
    int receive_max, max_qos; /* -1: absent */
    const unsigned char *reason; /* Reason String, for error messages */
    size_t reason_len;
} mq_props_t;

/* Parses the property block at b[0..len) (its length first); returns the bytes it took. */
static size_t mq_props(mq_t *m, const char *what, const unsigned char *b, size_t len, mq_props_t *out) {
    uint32_t pl;
    size_t vl = mq_get_varint(b, len, &pl);
    if (!vl || pl > len - vl) die("%s: malformed %s properties", m->name, what);
    if (out) *out = (mq_props_t){.receive_max = -1, .max_qos = -1};
    const unsigned char *p = b + vl, *end = p + pl;
    while (p < end) {
        int id = *p++;
        size_t need;
        switch (id) {
        case 0x01: case 0x17: case 0x19: case 0x24: case 0x25: case 0x28: case 0x29: case 0x2a:
            need = 1;
            break;
        case 0x13: case 0x21: case 0x22: case 0x23:
            need = 2;
            break;
        case 0x02: case 0x11: case 0x18: case 0x27:
            need = 4;
            break;
        case 0x0b: {
            uint32_t unused;
            need = mq_get_varint(p, (size_t)(end - p), &unused);
            if (!need) die("%s: malformed %s properties", m->name, what);
            break;
        }
        case 0x03: case 0x08: case 0x09: case 0x12: case 0x15: case 0x16: case 0x1a: case 0x1c: case 0x1f:
            if (end - p < 2) die("%s: malformed %s properties", m->name, what);
            need = 2 + ((size_t)p[0] << 8 | p[1]);
            break;
        case 0x26: /* user property: two strings */
            if (end - p < 2) die("%s: malformed %s properties", m->name, what);
            need = 2 + ((size_t)p[0] << 8 | p[1]);
            if ((size_t)(end - p) < need + 2) die("%s: malformed %s properties", m->name, what);
            need += 2 + ((size_t)p[need] << 8 | p[need + 1]);
            break;
        default:
            die("%s: %s has unknown property 0x%02x", m->name, what, id);
        }
        if ((size_t)(end - p) < need) die("%s: malformed %s properties", m->name, what);
        if (out && id == 0x21) out->receive_max = p[0] << 8 | p[1];
        if (out && id == 0x24) out->max_qos = p[0];
        if (out && id == 0x1f) {
            out->reason = p + 2;
            out->reason_len = need - 2;
        }
        p += need;
    }
    return vl + pl;
}

/* A v5 reason code at or above 0x80 is a refusal: report it with the server's reason string. */
static void mq_check_reason(mq_t *m, const char *what, int rc, const mq_props_t *pr) {
    if (rc < 0x80) return;
    if (pr && pr->reason)
        die("%s: %s: reason code 0x%02x (%s): %.*s", m->name, what, rc, v5_reason(rc),
            (int)(pr->reason_len > 200 ? 200 : pr->reason_len), (const char *)pr->reason);
    die("%s: %s: reason code 0x%02x (%s)", m->name, what, rc, v5_reason(rc));
}

static void mq_write(mq_t *m, const void *p, size_t n) {
    pthread_mutex_lock(&m->wmu);
    fd_write_all(m->fd, m->name, p, n);
    pthread_mutex_unlock(&m->wmu);
}

static size_t mq_varint(unsigned char *p, uint32_t v) {
    size_t n = 0;
    do {
        unsigned char d = v & 0x7f;
        v >>= 7;
        p[n++] = (unsigned char)(v ? d | 0x80 : d);
    } while (v);
    return n;
}

static void mq_packet(mq_t *m, unsigned char b0, const unsigned char *b, size_t len) {
    int type = b0 >> 4;
    switch (type) {
    case 2: /* CONNACK: flags, code, [v5: properties] */
        if (len < 2) die("%s: malformed CONNACK", m->name);
        if (len == 2 && b[1] != 0) /* a 3.1.1 refusal, also what a server without MQTT 5 answers a v5 CONNECT */
            die("%s: CONNACK refused the connection: return code %d (%s)", m->name, b[1], connack_reason(b[1]));
        if (!V5) {
            if (len != 2) die("%s: malformed CONNACK", m->name);
        } else {
            mq_props_t pr;
            if (len == 2 || 2 + mq_props(m, "CONNACK", b + 2, len - 2, &pr) != len) die("%s: malformed MQTT 5 CONNACK", m->name);
            mq_check_reason(m, "CONNACK refused the connection", b[1], &pr);
            if (pr.max_qos >= 0 && pr.max_qos < O.qos) die("%s: server's Maximum QoS is %d, below --qos %d", m->name, pr.max_qos, O.qos);
            m->receive_max = pr.receive_max > 0 ? (unsigned)pr.receive_max : 65535;
        }
        m->connacked = 1;
        break;
    case 3: { /* PUBLISH */
        int qos = (b0 >> 1) & 3;
        size_t tl = len >= 2 ? (size_t)b[0] << 8 | b[1] : 0, vh = 2 + tl + (qos ? 2 : 0);
        if (len < 2 || vh > len) die("%s: malformed PUBLISH", m->name);
        if (V5) vh += mq_props(m, "PUBLISH", b + vh, len - vh, NULL);
        if (tl != strlen(O.subject) || memcmp(b + 2, O.subject, tl) != 0)
            die("%s: PUBLISH on unexpected topic '%.*s'", m->name, (int)(tl > 200 ? 200 : tl), (const char *)b + 2);
        if (PROBING && qos == 0 && len - vh == (size_t)O.size + 1) { /* a probe: counted apart, owes no PUBACK */
            atomic_fetch_add(&m->probes, 1);
            break;
        }
        if (qos != O.qos) die("%s: message delivered at QoS %d; published and subscribed at QoS %d", m->name, qos, O.qos);
        if (len - vh != (size_t)O.size) die("%s: %zu-byte payload, expected %d", m->name, len - vh, O.size);
        if (qos == 1) {
            grow(&m->ack, &m->ackcap, m->acklen + 4);
            unsigned char *a = m->ack + m->acklen;
            a[0] = 0x40;
            a[1] = 2; /* v5 too: a PUBACK without reason code means success (0x00) */
            a[2] = b[2 + tl];
            a[3] = b[3 + tl];
            m->acklen += 4;
        }
        if (b0 & 0x08) m->dups++;
        m->msgs++;
        break;
    }
    case 4: { /* PUBACK: packet id, [v5: reason code, [properties]] */
        if (V5 ? len < 2 : len != 2) die("%s: malformed PUBACK", m->name);
        unsigned id = (unsigned)b[0] << 8 | b[1];
        if (len > 2) {
            mq_props_t pr;
            if (len == 3) pr = (mq_props_t){.reason = NULL};
            else if (3 + mq_props(m, "PUBACK", b + 3, len - 3, &pr) != len) die("%s: malformed PUBACK", m->name);
            mq_check_reason(m, "PUBACK refused a PUBLISH", b[2], &pr); /* 0x10 "no matching subscribers" is a success */
        }
        if (!m->inflight || !m->inflight[id]) die("%s: PUBACK for packet id %u, which is not in flight", m->name, id);
        m->inflight[id] = 0;
        m->ninflight--;
        m->acked++;
        break;
    }
    case 9: { /* SUBACK: packet id, [v5: properties], one code (one topic filter was sent) */
        mq_props_t pr = {.reason = NULL};
        size_t at = 2 + (V5 && len > 2 ? mq_props(m, "SUBACK", b + 2, len - 2, &pr) : 0);
        if (len < 3 || at + 1 != len) die("%s: malformed SUBACK (%zu bytes)", m->name, len);
        int rc = b[at];
        if (!V5 && rc == 0x80) die("%s: SUBSCRIBE refused (SUBACK return code 0x80)", m->name);
        if (V5) mq_check_reason(m, "SUBSCRIBE refused", rc, &pr);
        if (rc != O.qos) die("%s: SUBACK granted QoS %d, asked for %d", m->name, rc, O.qos);
        m->subacked++;
        break;
    }
    case 13: /* PINGRESP */
        m->pingresps++;
        break;
    case 14: { /* DISCONNECT from the server (MQTT 5 only): the reason is why the run failed */
        if (!V5) die("%s: DISCONNECT from the server, which MQTT 3.1.1 does not allow", m->name);
        mq_props_t pr = {.reason = NULL};
        if (len > 1 && 1 + mq_props(m, "DISCONNECT", b + 1, len - 1, &pr) != len) die("%s: malformed DISCONNECT", m->name);
        int rc = len ? b[0] : 0;
        if (pr.reason)
            die("%s: server sent DISCONNECT: reason code 0x%02x (%s): %.*s", m->name, rc, v5_reason(rc),
                (int)(pr.reason_len > 200 ? 200 : pr.reason_len), (const char *)pr.reason);
        die("%s: server sent DISCONNECT: reason code 0x%02x (%s)", m->name, rc, v5_reason(rc));
    }
    default:
        die("%s: unexpected MQTT packet type %d (first byte 0x%02x)", m->name, type, b0);
    }
}

static void mq_parse(mq_t *m) {
    size_t off = 0;
    while (m->rlen - off >= 2) {
        const unsigned char *p = m->rbuf + off;
        size_t avail = m->rlen - off, hl = 0;
        uint32_t rl = 0;
        for (int k = 0; k < 4 && 1 + (size_t)k < avail; k++) {
            rl |= (uint32_t)(p[1 + k] & 0x7f) << (7 * k);
            if (!(p[1 + k] & 0x80)) {
                hl = 2 + (size_t)k;
                break;
            }
            if (k == 3) die("%s: malformed MQTT remaining length", m->name);
        }
        if (!hl) break; /* the length itself is not complete yet */
        size_t total = hl + rl;
        if (total > m->rcap) die("%s: MQTT packet of %zu bytes is larger than the read buffer", m->name, total);
        if (avail < total) break;
        mq_packet(m, p[0], p + hl, rl);
        off += total;
    }
    if (off) {
        memmove(m->rbuf, m->rbuf + off, m->rlen - off);
        m->rlen -= off;
    }
}

/* One read, packets handled, owed PUBACKs sent. Returns bytes read, 0 on EOF (if eof_ok), or
 * -1 if `nonblock` and nothing was there. */
static ssize_t mq_read(mq_t *m, int eof_ok, int nonblock) {
    for (;;) {
        if (m->quickack && !nonblock) setsockopt(m->fd, IPPROTO_TCP, TCP_QUICKACK, &(int){1}, sizeof(int));
        ssize_t r = io_read(m->fd, m->rbuf + m->rlen, m->rcap - m->rlen, nonblock ? MSG_DONTWAIT : 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (nonblock) return -1;
            die("%s: nothing received for %d s (server stopped delivering?)", m->name, O.timeout);
        }
        if (r < 0) {
            if (eof_ok) return 0;
            die("%s: read: %s", m->name, strerror(errno));
        }
        if (r == 0) {
            if (eof_ok) return 0;
            die("%s: connection closed by server", m->name);
        }
        m->rlen += (size_t)r;
        mq_parse(m);
        if (m->acklen) {
            mq_write(m, m->ack, m->acklen);
            m->acklen = 0;
        }
        return r;
    }
}

/* Connect, CONNECT (MQTT 3.1.1 or 5, clean session / clean start), wait for CONNACK. */
static void mq_open(mq_t *m, const struct addrinfo *ai, const char *name, const char *client_id, size_t rcap) {
    memset(m, 0, sizeof *m);
    m->name = name;
    m->rcap = rcap;
    m->rbuf = malloc(rcap);
    if (!m->rbuf) die("out of memory");
    pthread_mutex_init(&m->wmu, NULL);
    m->fd = tcp_connect(ai, name);
    if (O.tls) tls_start(m->fd, name);
    size_t idl = strlen(client_id);
    size_t ul = O.user ? strlen(O.user) : 0, pl = O.user && O.pass ? strlen(O.pass) : 0;
    if (idl > 100 || ul > 100 || pl > 100) die("client id or credentials too long");
    unsigned char pkt[512];
    size_t n = 0;
    pkt[n++] = 0x10;
    n += mq_varint(pkt + n, (uint32_t)(10 + V5 + 2 + idl + (O.user ? 2 + ul + 2 + pl : 0)));
    memcpy(pkt + n, "\0\4MQTT\4\2", 8); /* protocol name, level 4, flags: clean session */
    pkt[n + 6] = (unsigned char)O.mqtt_version;
    if (O.user) pkt[n + 7] |= 0xC0; /* user name and password */
    n += 8;
    pkt[n++] = MQTT_KEEPALIVE >> 8;
    pkt[n++] = MQTT_KEEPALIVE & 0xff;
    if (V5) pkt[n++] = 0; /* no properties */
    pkt[n++] = 0;
    pkt[n++] = (unsigned char)idl;
    memcpy(pkt + n, client_id, idl);
    n += idl;
    if (O.user) {
        const char *f[2] = {O.user, O.pass ? O.pass : ""};
        size_t fl[2] = {ul, pl};
        for (int k = 0; k < 2; k++) {
            pkt[n++] = (unsigned char)(fl[k] >> 8);
            pkt[n++] = (unsigned char)fl[k];
            memcpy(pkt + n, f[k], fl[k]);
            n += fl[k];
        }
    }
    mq_write(m, pkt, n);
    while (!m->connacked) mq_read(m, 0, 0);
}

static void mq_subscribe(mq_t *m, const char *topic, int qos) {
    size_t tl = strlen(topic);
    if (tl > 200) die("topic too long");
    unsigned char pkt[256];
    size_t n = 0;
    pkt[n++] = 0x82;
    n += mq_varint(pkt + n, (uint32_t)(2 + V5 + 2 + tl + 1));
    pkt[n++] = 0;
    pkt[n++] = 1; /* packet id */
    if (V5) pkt[n++] = 0; /* no properties */
    pkt[n++] = (unsigned char)(tl >> 8);
    pkt[n++] = (unsigned char)tl;
    memcpy(pkt + n, topic, tl);
    n += tl;
    pkt[n++] = (unsigned char)qos; /* v5 subscription options: this QoS, local delivery, retain as sent */
    mq_write(m, pkt, n);
    while (!m->subacked) mq_read(m, 0, 0);
}

static void *mq_sub_main(void *arg) {
    sub_t *s = arg;
    mq_t *m = s->m;
    for (;;) {
        uint64_t before = m->msgs, pb = m->pingresps;
        if (mq_read(m, 1, 0) == 0) {
            if (atomic_load(&DONE)) return NULL;
            die("%s: connection closed by server", m->name);
        }
        sub_progress(s, m->msgs, m->msgs - before, m->pingresps, m->pingresps != pb);
    }
}

static uint64_t sub_probes(sub_t *s) { return s->m ? atomic_load(&s->m->probes) : atomic_load(&s->c.probes); }

/* A QoS 0 PUBLISH: it reaches a QoS 1 subscriber at QoS 0 too, so it needs no packet id. */
static void mqtt_probe(void *pub, const char *payload, int len) {
    size_t tl = strlen(O.subject), n = 0;
    unsigned char *pkt = malloc(tl + (size_t)len + 16);
    if (!pkt) die("out of memory");
    pkt[n++] = 0x30;
    n += mq_varint(pkt + n, (uint32_t)(2 + tl + V5 + (size_t)len));
    pkt[n++] = (unsigned char)(tl >> 8);
    pkt[n++] = (unsigned char)tl;
    memcpy(pkt + n, O.subject, tl);
    n += tl;
    if (V5) pkt[n++] = 0; /* no properties */
    memcpy(pkt + n, payload, (size_t)len);
    mq_write(pub, pkt, n + (size_t)len);
    free(pkt);
}

static int run_mqtt(void) {
    struct addrinfo *ai = resolve();
    if (O.qos != 0 && O.qos != 1) die("--qos must be 0 or 1");
    if (O.inflight < 1 || O.inflight > 65000) die("--inflight must be between 1 and 65000");
    EXPECTED = (uint64_t)O.count * (uint64_t)O.subs;
    SUBS = calloc((size_t)O.subs, sizeof *SUBS);
    mq_t *ms = calloc((size_t)O.subs + 1, sizeof *ms);
    if (!SUBS || !ms) die("out of memory");
    int pid = (int)getpid();
    for (int i = 0; i < O.subs; i++) {
        char *name, *cid;
        if (asprintf(&name, "sub%d", i) < 0 || asprintf(&cid, "lg%d-sub%d", pid, i) < 0) die("out of memory");
        SUBS[i].m = &ms[i];
        struct addrinfo *sai = resolve_sub(i);
        mq_open(&ms[i], sai, name, cid, 256 * 1024);
        freeaddrinfo(sai);
        mq_subscribe(&ms[i], O.subject, O.qos);
    }
    char pubid[64];
    snprintf(pubid, sizeof pubid, "lg%d-pub", pid);
    mq_t *pub = &ms[O.subs];
    mq_open(pub, ai, "pub", pubid, 64 * 1024);
    if (O.qos == 1 && !(pub->inflight = calloc(65536, 1))) die("out of memory");
    pub->quickack = O.qos == 1;
    /* MQTT 5: more QoS 1 PUBLISHes in flight than the server's Receive Maximum is a protocol error */
    long inflight = V5 && pub->receive_max < (unsigned long)O.inflight ? (long)pub->receive_max : O.inflight;
    for (int i = 0; i < O.subs; i++)
        if (pthread_create(&SUBS[i].th, NULL, mq_sub_main, &SUBS[i]) != 0) die("pthread_create failed");
    /* on one server SUBACK means subscribed; across a cluster the interest must travel first */
    double probe_s = O.n_sub_ports ? probe_interest(mqtt_probe, pub) : 0;

    /* one pre-built batch of identical PUBLISH packets; at QoS 1 each gets its packet id patched in */
    size_t tl = strlen(O.subject);
    if (tl > 1000) die("topic too long");
    uint32_t rl = (uint32_t)(2 + tl + (O.qos ? 2 : 0) + V5 + (size_t)O.size);
    unsigned char hdr[1100];
    size_t hl = 0;
    hdr[hl++] = (unsigned char)(0x30 | O.qos << 1);
    hl += mq_varint(hdr + hl, rl);
    hdr[hl++] = (unsigned char)(tl >> 8);
    hdr[hl++] = (unsigned char)tl;
    memcpy(hdr + hl, O.subject, tl);
    hl += tl;
    size_t id_off = hl; /* where the packet id goes at QoS 1 */
    if (O.qos) hl += 2;
    if (V5) hdr[hl++] = 0; /* no properties */
    size_t mlen = hl + (size_t)O.size;
    long per = (long)((size_t)O.batch / mlen);
    if (per < 1) per = 1;
    if (O.window > 0 && per > O.window) per = O.window; /* a batch never waits for itself */
    /* at QoS 1 half the packet ids at most per batch: the next batch goes out while the PUBACKs
     * of the last come back, instead of stop-and-wait (which a small Receive Maximum such as
     * mosquitto's 20 would turn into one round trip, and Nagle delay, per batch) */
    if (O.qos == 1 && per > (inflight + 1) / 2) per = (inflight + 1) / 2;
    unsigned char *batch = malloc(mlen * (size_t)per);
    char *payload = make_payload(O.size);
    if (!batch) die("out of memory");
    for (long i = 0; i < per; i++) {
        unsigned char *m = batch + (size_t)i * mlen;
        memcpy(m, hdr, hl);
        memcpy(m + hl, payload, (size_t)O.size);
    }

    double t0 = now_s(), cpu0 = cpu_s();
    uint64_t sent = 0;
    unsigned next_id = 1;
    while (sent < (uint64_t)O.count) {
        uint64_t n = (uint64_t)O.count - sent < (uint64_t)per ? (uint64_t)O.count - sent : (uint64_t)per;
        if (O.window > 0 && sent + n > (uint64_t)O.window)
            wait_window(sent + n - (uint64_t)O.window);
        if (O.qos == 1) {
            while (mq_read(pub, 0, 1) > 0) {} /* PUBACKs already there */
            while (pub->ninflight + n > (uint64_t)inflight) mq_read(pub, 0, 0);
            for (uint64_t k = 0; k < n; k++) {
                if (pub->inflight[next_id]) die("pub: packet id %u still awaiting PUBACK", next_id);
                pub->inflight[next_id] = 1;
                unsigned char *m = batch + k * mlen + id_off;
                m[0] = (unsigned char)(next_id >> 8);
                m[1] = (unsigned char)next_id;
                next_id = next_id == 65535 ? 1 : next_id + 1;
            }
            pub->ninflight += n;
        }
        mq_write(pub, batch, (size_t)n * mlen);
        sent += n;
    }
    if (O.qos == 1) {
        while (pub->ninflight) mq_read(pub, 0, 0);
    } else { /* the PINGRESP comes after the server has read every PUBLISH before it */
        uint64_t want = pub->pingresps + 1;
        mq_write(pub, "\xc0\0", 2);
        while (pub->pingresps < want) mq_read(pub, 0, 0);
    }
    double t_pub = now_s();
    wait_progress(pred_all, 0, "the last messages");
    double t_end = atomic_load(&T_END);
    double cpu = cpu_s() - cpu0;

    /* PINGREQ every subscriber: its PINGRESP follows what is already queued for it, so a
     * count above the expected one now means duplicate or misrouted deliveries. */
    uint64_t target = UINT64_MAX;
    for (int i = 0; i < O.subs; i++) {
        uint64_t p = atomic_load(&SUBS[i].pongs);
        if (p < target) target = p;
    }
    for (int i = 0; i < O.subs; i++) mq_write(&ms[i], "\xc0\0", 2);
    wait_progress(pred_subs_ponged, target + 1, "subscriber PINGRESPs");
    uint64_t total = atomic_load(&TOTAL_GOT);
    atomic_store(&DONE, 1);
    for (int i = 0; i < O.subs; i++) shutdown(ms[i].fd, SHUT_RDWR);
    for (int i = 0; i < O.subs; i++) pthread_join(SUBS[i].th, NULL);
    uint64_t dups = 0;
    for (int i = 0; i < O.subs; i++) dups += ms[i].dups;
    if (total != EXPECTED)
        die("delivered %llu messages (%llu flagged DUP), expected exactly %llu", (unsigned long long)total,
            (unsigned long long)dups, (unsigned long long)EXPECTED);

    char per_sub[4096];
    size_t off = 0;
    for (int i = 0; i < O.subs && off < sizeof per_sub - 32; i++)
        off += (size_t)snprintf(per_sub + off, sizeof per_sub - off, "%s%llu", i ? "," : "",
                                (unsigned long long)SUBS[i].got);
    per_sub[off] = 0;
    printf("{\"mode\":\"mqtt\",\"mqtt_version\":%d,\"qos\":%d,\"inflight\":%ld,\"subs\":%d,\"size\":%d,\"published\":%ld,\"delivered\":%llu,"
           "\"dups\":%llu,\"pub_rate\":%.1f,\"recv_rate\":%.1f,\"pub_s\":%.6f,\"elapsed_s\":%.6f,"
           "\"cpu_s\":%.3f,\"probe_s\":%.3f,\"per_sub\":[%s]}\n",
           O.mqtt_version, O.qos, O.qos ? inflight : 0, O.subs, O.size, O.count, (unsigned long long)total, (unsigned long long)dups,
           (double)O.count / (t_pub - t0), (double)total / (t_end - t0), t_pub - t0, t_end - t0, cpu, probe_s, per_sub);
    close(pub->fd);
    freeaddrinfo(ai);
    return 0;
}

static void mqttidle_open(void *conns, int i) {
    mq_t *m = (mq_t *)conns + i;
    char cid[64];
    snprintf(cid, sizeof cid, "lg%d-idle%d", (int)getpid(), i);
    mq_open(m, IDLE_AI, "idle", cid, 256);
    free(m->rbuf);
    m->rbuf = NULL;
}

static int run_mqttidle(void) { return run_idle_mode("mqttidle", mqttidle_open, sizeof(mq_t), offsetof(mq_t, fd)); }

/* ---------------------------------------------------------------------------------------
 * storm: --conns N clients, taking turns over the transports of --mix (nats, ws, mqtt; --port,
 * --ws-port, --mqtt-port), each connecting (with --tls, --user/--pass when given) and
 * subscribing to --subject (NATS: SUB + PING/PONG; MQTT: SUBSCRIBE QoS 0/SUBACK), --parallel K
 * at a time. Then one more client (NATS over TCP on --port unless the mix is MQTT alone, then
 * MQTT) publishes one --size message on
 * the subject; every client must receive it. Reports the time until all were subscribed and
 * from the publish until the last one got it.
 * ------------------------------------------------------------------------------------- */
enum { T_NATS, T_WS, T_MQTT };

typedef struct {
    int kind;
    conn_t c;
    mq_t m;
} storm_t;

static int MIX[3], NMIX;
static struct addrinfo *STORM_AI[3];

static void storm_open(void *conns, int i) {
    storm_t *s = (storm_t *)conns + i;
    s->kind = MIX[i % NMIX];
    if (s->kind == T_MQTT) {
        char cid[64];
        snprintf(cid, sizeof cid, "lg%d-storm%d", (int)getpid(), i);
        mq_open(&s->m, STORM_AI[T_MQTT], "storm", cid, 4096);
        mq_subscribe(&s->m, O.subject, 0);
    } else {
        conn_open_ws(&s->c, STORM_AI[s->kind], "storm", 4096, s->kind == T_WS);
        conn_subscribe(&s->c, O.subject, NULL, 1); /* returns once its PONG is back */
    }
}

static void storm_receive(void *conns, int i) {
    storm_t *s = (storm_t *)conns + i;
    if (s->kind == T_MQTT) {
        while (s->m.msgs < 1) mq_read(&s->m, 0, 0);
    } else {
        while (s->c.msgs < 1) {
            conn_read(&s->c, 0);
            answer_pings(&s->c);
        }
    }
}

static int run_storm(void) {
    raise_nofile();
    NMIX = 0;
    for (const char *p = O.mix; *p;) {
        size_t n = strcspn(p, ",");
        int k = n == 4 && !strncmp(p, "nats", 4) ? T_NATS : n == 2 && !strncmp(p, "ws", 2) ? T_WS
              : n == 4 && !strncmp(p, "mqtt", 4) ? T_MQTT : -1;
        if (k < 0 || NMIX == 3) die("--mix: a list of nats, ws, mqtt, not '%s'", O.mix);
        MIX[NMIX++] = k;
        p += n + (p[n] == ',');
    }
    if (!NMIX) die("--mix is empty");
    int has_nats = 0;
    for (int k = 0; k < NMIX; k++) {
        int port = MIX[k] == T_NATS ? O.port : MIX[k] == T_WS ? O.ws_port : O.mqtt_port;
        if (!port) die("storm: the mix needs --%s", MIX[k] == T_WS ? "ws-port" : "mqtt-port");
        STORM_AI[MIX[k]] = resolve_port(port);
        has_nats |= MIX[k] != T_MQTT;
    }
    if (has_nats && !STORM_AI[T_NATS]) STORM_AI[T_NATS] = resolve(); /* the publisher's */
    storm_t *ss = calloc((size_t)O.conns, sizeof *ss);
    if (!ss) die("out of memory");
    double t_sub = open_all(storm_open, ss);
    /* The publisher is one more client; the message has --size bytes. */
    char *pay = make_payload(O.size);
    size_t tl = strlen(O.subject), pl = (size_t)O.size;
    unsigned char *pkt = malloc(tl + pl + 64);
    if (!pkt) die("out of memory");
    double t0;
    if (has_nats) {
        conn_t pub;
        conn_open_ws(&pub, STORM_AI[T_NATS], "publisher", 4096, 0);
        int n = snprintf((char *)pkt, 64 + tl, "PUB %s %zu\r\n", O.subject, pl);
        memcpy(pkt + n, pay, pl);
        memcpy(pkt + n + pl, "\r\n", 2);
        t0 = now_s();
        write_all(&pub, (const char *)pkt, (size_t)n + pl + 2);
    } else {
        mq_t pub;
        mq_open(&pub, STORM_AI[T_MQTT], "publisher", "storm-publisher", 4096);
        size_t n = 0;
        pkt[n++] = 0x30;
        n += mq_varint(pkt + n, (uint32_t)(2 + tl + V5 + pl));
        pkt[n++] = (unsigned char)(tl >> 8);
        pkt[n++] = (unsigned char)tl;
        memcpy(pkt + n, O.subject, tl);
        n += tl;
        if (V5) pkt[n++] = 0;
        memcpy(pkt + n, pay, pl);
        n += pl;
        t0 = now_s();
        mq_write(&pub, pkt, n);
    }
    (void)open_all(storm_receive, ss);
    double t_reach = now_s() - t0;
    printf("{\"mode\":\"storm\",\"conns\":%d,\"parallel\":%d,\"subscribed_s\":%.6f,\"reach_s\":%.6f}\n", O.conns, O.parallel,
           t_sub, t_reach);
    return 0;
}

/* --------------------------------------------------------------------------------------- */
static void usage(void) {
    fputs("usage: loadgen pubsub|reqrep|idle|mqtt|mqttidle|storm [--host H] [--port P] [--subject S]\n"
          "               [--subs N] [--queue Q] [--count M] [--size B] [--window W] [--warmup K]\n"
          "               [--requesters R]\n"
          "               [--conns N] [--parallel K] [--tls 0|1] [--timeout SEC]\n"
          "               [--mix nats,ws,mqtt] [--ws-port P] [--mqtt-port P] [--user U] [--pass P] [--batch BYTES] [--transport tcp|ws|ws-deflate]\n"
          "               [--path /] [--qos 0|1] [--inflight K] [--sub-ports P1,P2] [--mqtt-version 4|5]\n", stderr);
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
        else if (!strcmp(k, "--sub-ports")) {
            O.n_sub_ports = 0;
            for (const char *p = v; *p;) {
                if (O.n_sub_ports == MAX_SUB_PORTS) die("--sub-ports: at most %d ports", MAX_SUB_PORTS);
                char *end;
                long n = strtol(p, &end, 10);
                if (end == p || n < 1 || n > 65535 || (*end && *end != ',')) die("--sub-ports: bad port list '%s'", v);
                O.sub_ports[O.n_sub_ports++] = (int)n;
                p = *end ? end + 1 : end;
            }
        }
        else if (!strcmp(k, "--subject")) O.subject = v;
        else if (!strcmp(k, "--queue")) O.queue = *v ? v : NULL;
        else if (!strcmp(k, "--subs")) O.subs = (int)num_arg(k, v, 1);
        else if (!strcmp(k, "--count")) O.count = num_arg(k, v, 1);
        else if (!strcmp(k, "--size")) O.size = (int)num_arg(k, v, 0);
        else if (!strcmp(k, "--window")) O.window = num_arg(k, v, 0);
        else if (!strcmp(k, "--warmup")) O.warmup = num_arg(k, v, 0);
        else if (!strcmp(k, "--requesters")) O.requesters = (int)num_arg(k, v, 1);
        else if (!strcmp(k, "--conns")) O.conns = (int)num_arg(k, v, 1);
        else if (!strcmp(k, "--parallel")) O.parallel = (int)num_arg(k, v, 1);
        else if (!strcmp(k, "--tls")) O.tls = num_arg(k, v, 0) != 0;
        else if (!strcmp(k, "--ws-port")) O.ws_port = (int)num_arg(k, v, 1);
        else if (!strcmp(k, "--mqtt-port")) O.mqtt_port = (int)num_arg(k, v, 1);
        else if (!strcmp(k, "--mix")) O.mix = v;
        else if (!strcmp(k, "--user")) O.user = v;
        else if (!strcmp(k, "--pass")) O.pass = v;
        else if (!strcmp(k, "--timeout")) O.timeout = (int)num_arg(k, v, 1);
        else if (!strcmp(k, "--batch")) O.batch = num_arg(k, v, 1);
        else if (!strcmp(k, "--path")) O.path = v;
        else if (!strcmp(k, "--qos")) O.qos = (int)num_arg(k, v, 0);
        else if (!strcmp(k, "--inflight")) O.inflight = num_arg(k, v, 1);
        else if (!strcmp(k, "--mqtt-version")) {
            O.mqtt_version = (int)num_arg(k, v, 4);
            if (O.mqtt_version != 4 && O.mqtt_version != 5) {
                fprintf(stderr, "loadgen: --mqtt-version must be 4 (MQTT 3.1.1) or 5, not '%s'\n", v);
                exit(2);
            }
        }
        else if (!strcmp(k, "--transport")) {
            if (!strcmp(v, "tcp")) O.ws = 0;
            else if (!strcmp(v, "ws")) O.ws = 1;
            else if (!strcmp(v, "ws-deflate")) O.ws = 2;
            else usage();
        } else usage();
    }
    signal(SIGPIPE, SIG_IGN); /* a closed server socket shows up as EPIPE from write() */
    if (O.tls) {
        if (strcmp(O.mode, "idle") && strcmp(O.mode, "mqttidle") && strcmp(O.mode, "storm")) die("--tls 1 is for the idle and storm modes");
        TLS_CTX = SSL_CTX_new(TLS_client_method());
        if (!TLS_CTX) die("SSL_CTX_new failed");
        SSL_CTX_set_verify(TLS_CTX, SSL_VERIFY_NONE, NULL);
    }
    if (!strcmp(O.mode, "pubsub")) return run_pubsub();
    if (!strcmp(O.mode, "reqrep")) return run_reqrep();
    if (!strcmp(O.mode, "idle")) return run_idle();
    if (!strcmp(O.mode, "mqtt")) return run_mqtt();
    if (!strcmp(O.mode, "mqttidle")) return run_mqttidle();
    if (!strcmp(O.mode, "storm")) return run_storm();
    usage();
    return 2;
}
