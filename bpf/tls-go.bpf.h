/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Plaintext of Go crypto/tls connections: uprobes on crypto/tls.(*Conn).Read and (*Conn).Write
 * in the Go binary itself (linked statically, no library file). Part of wirescope.bpf.c, after
 * tls.bpf.h (mark_tls, tls_count, emit_data).
 *
 *   (*Conn).Read/Write entry ── Go register ABI (ABIInternal, Go >= 1.17): RAX = c *Conn,
 *      │                         RBX, RCX = b []byte (pointer, length); R14 = the goroutine (g)
 *      │                         socket fd read from c (offsets of this binary, ws_go_tls);
 *      │                         the connection is marked TLS at once, so a handshake the call
 *      │                         runs is not shipped. Write: emit_data(b) now (below).
 *      │                         Read: save {fd, conn_key} in go_calls[(tgid, g)]
 *   Read's call of runtime.memmove ── the copy of plaintext into b: RBX = source, RCX = n:
 *                                  emit_data(source, n) on the same connection
 *   (or, for a Read without exactly one such call: each RET, RAX = n, plaintext from b)
 *
 * Where the probes sit, and why: an x86 uprobe on an instruction the kernel cannot emulate is
 * single-stepped out of line, ~10 µs a hit in this VM (a trap and a debug exception). Branches and
 * calls are emulated. So the entry probe sits on the stack check's jbe right after the function's
 * first instruction (nothing there has touched the argument registers), and Read's plaintext is
 * taken at its call of runtime.memmove (copy(b, c.input)), whose count is what Read returns. No
 * uretprobes: they rewrite the return address on the stack, and Go copies a goroutine's stack when
 * it grows: the process would return into nowhere. Calls are keyed by (tgid, g), not by thread: a
 * goroutine blocked in Read resumes on any thread. R14 holds g in Go code compiled for ABIInternal.
 *
 * Why Write's plaintext goes out at entry: Go writes from one goroutine and closes from another
 * (HTTP/2 server: frames are written by writeFrameAsync goroutines, the conn closed by the serve
 * loop when the peer hangs up). The peer can read the last response and close, and our close
 * be seen, before the writing goroutine returns: bytes really sent would be lost. Write returns
 * n < len(b) only with an error on a broken connection, whose record is incomplete anyway. A Read
 * that copies after its socket was closed is counted and dropped (go_read_closed): its fd may
 * already name another connection.
 *
 * The attach cookie of each uprobe is the binary's slot in go_tls_binaries (offsets differ
 * between Go versions and builds).
 */
#ifndef WIRESCOPE_TLS_GO_BPF_H
#define WIRESCOPE_TLS_GO_BPF_H

/* Offsets of each Go binary with uprobes. Key: slot (the uprobes' attach cookie). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, WS_MAX_GO_BINARIES);
	__type(key, __u32);
	__type(value, struct ws_go_tls);
} go_tls_binaries SEC(".maps");

/* A Go TLS Read between its entry and its copy. Key: {tgid, goroutine's g pointer}. LRU; also
 * removed with the connection it reads (go_forget_read). */
struct go_call_key {
	__u32 tgid;
	__u32 _pad;
	__u64 g;
};
struct go_call {
	__u64 buf;      /* b's pointer (for the RET fallback) */
	__u64 conn_key; /* the socket's connection at entry */
	__u32 fd;
};
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WS_MAX_GO_CALLS);
	__type(key, struct go_call_key);
	__type(value, struct go_call);
} go_calls SEC(".maps");

/* The socket fd of a *tls.Conn (see struct ws_go_tls), or -1 (counted). */
static __always_inline long go_conn_fd(struct pt_regs *ctx, struct ws_go_tls *b, __u64 conn, __u64 entry)
{
	__u64 iface[2]; /* net.Conn: {itab, data} */
	if (bpf_probe_read_user(iface, sizeof(iface), (void *)(conn + b->conn_iface))) {
		tls_count(WS_TLS_STAT_GO_NO_FD, 1);
		return -1;
	}
	/* a tls.Conn over a net.Pipe, a unix socket or a user's wrapper: not a TCP socket we know */
	if (b->itab_tcpconn && iface[0] != b->itab_tcpconn + (PT_REGS_IP(ctx) - entry)) {
		tls_count(WS_TLS_STAT_GO_NOT_TCPCONN, 1);
		return -1;
	}
	__u64 netfd = 0;
	__s64 sysfd = -1;
	if (bpf_probe_read_user(&netfd, sizeof(netfd), (void *)(iface[1] + b->tcpconn_fd)) || !netfd ||
	    bpf_probe_read_user(&sysfd, sizeof(sysfd), (void *)(netfd + b->netfd_sysfd)) || sysfd < -1 || sysfd > 0x7fffffff) {
		tls_count(WS_TLS_STAT_GO_NO_FD, 1);
		return -1;
	}
	/* internal/poll's destroy() sets Sysfd to -1: a call that raced its connection's Close (an h2
	 * client's read loop, a Write after the peer went); it fails without moving bytes */
	if (sysfd == -1) {
		tls_count(WS_TLS_STAT_GO_CALL_CLOSED, 1);
		return -1;
	}
	return sysfd;
}

static __always_inline int go_tls_enter(struct pt_regs *ctx, __u8 dir)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	if (!process_traced(tgid))
		return 0;
	__u32 slot = bpf_get_attach_cookie(ctx);
	struct ws_go_tls *b = bpf_map_lookup_elem(&go_tls_binaries, &slot);
	if (!b)
		return 0;
	long fd = go_conn_fd(ctx, b, ctx->ax, dir == WS_DIR_EGRESS ? b->write_entry : b->read_entry);
	if (fd < 0)
		return 0;
	/* marked now: a handshake this call runs (a server's first Read) is ciphertext not shipped */
	struct conn_info *ci = conn_of_fd(tgid, fd);
	if (!ci) {
		tls_count(WS_TLS_STAT_NOT_TCP, 1);
		return 0;
	}
	mark_tls(ci, tgid, fd, WS_TLS_GO);
	if (dir == WS_DIR_EGRESS) {
		__u64 len = ctx->cx;
		if (len == 0 || len >= (1ULL << 40)) {
			tls_count(WS_TLS_STAT_CALL_EMPTY, 1);
			return 0;
		}
		tls_count(WS_TLS_STAT_CALLS, 1);
		emit_data(ci, fd, dir, WS_SYS_SSL_WRITE, ctx->bx, 0, 0, len);
		return 0;
	}
	struct go_call_key k = { .tgid = tgid, .g = ctx->r14 };
	struct go_call c = { .buf = ctx->bx, .conn_key = ci->conn_key, .fd = fd };
	if (bpf_map_update_elem(&go_calls, &k, &c, BPF_ANY))
		count_drop(WS_DROP_ARGS_MAP_FULL);
	ci->go_g = k.g; /* so that the connection's removal finds the call (go_forget_read) */
	return 0;
}

/*
 * The connection of fd is going (close, dup onto it, close_range, exec, the process's exit): the
 * Read last entered on it will not copy, so its saved call goes too. Without this, a goroutine
 * blocked in Read when its process exits, and every Read that returned an error (EOF, a closed
 * connection: only the copy is probed, not the RETs), left its entry until the goroutine's next
 * Read or the LRU. Keyed through the connection, it costs one lookup per connection removed,
 * nothing per process. The entry is removed only while it still names this connection: a
 * goroutine that has entered a Read of another connection since keeps that one's.
 *
 * What it cannot tell: a Close racing a Read between its socket read and its copy (the bytes are
 * decrypted, the copy not yet made) loses that Read's plaintext, with the Reads that will never
 * copy: both are counted in go_read_forgotten (the copy then finds no call; go_read_closed is left
 * for a copy whose fd lost its connection some other way, an eviction). Two goroutines in Read on one
 * tls.Conn at once (the second waits on the first's lock) leave the first's entry to the LRU.
 */
static __always_inline void go_forget_read(__u32 tgid, struct conn_info *ci)
{
	struct go_call_key k = { .tgid = tgid, .g = ci->go_g };
	struct go_call *c = bpf_map_lookup_elem(&go_calls, &k);
	if (!c || c->conn_key != ci->conn_key)
		return;
	bpf_map_delete_elem(&go_calls, &k);
	tls_count(WS_TLS_STAT_GO_READ_FORGOTTEN, 1);
}

/* func (c *Conn) Read(b []byte) (int, error) and Write likewise. */
SEC("uprobe")
int go_tls_read_enter(struct pt_regs *ctx) { return go_tls_enter(ctx, WS_DIR_INGRESS); }
SEC("uprobe")
int go_tls_write_enter(struct pt_regs *ctx) { return go_tls_enter(ctx, WS_DIR_EGRESS); }

static __always_inline int go_tls_read_emit(struct pt_regs *ctx, int at_copy)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct go_call_key k = { .tgid = tgid, .g = ctx->r14 };
	struct go_call *p = bpf_map_lookup_elem(&go_calls, &k);
	if (!p)
		return 0;
	struct go_call c = *p;
	bpf_map_delete_elem(&go_calls, &k);
	/* at the copy: memmove(RAX = b, RBX = plaintext, RCX = n); at a RET: RAX = n, in b */
	long n = at_copy ? (long)ctx->cx : (long)ctx->ax;
	__u64 src = at_copy ? ctx->bx : c.buf;
	if (n <= 0) {
		tls_count(WS_TLS_STAT_CALL_EMPTY, 1);
		return 0;
	}
	struct ws_fd_key fk = { .tgid = tgid, .fd = c.fd };
	struct conn_info *ci = bpf_map_lookup_elem(&conn_by_fd, &fk);
	if (!ci || ci->conn_key != c.conn_key) {
		tls_count(WS_TLS_STAT_GO_READ_CLOSED, 1);
		return 0;
	}
	tls_count(WS_TLS_STAT_CALLS, 1);
	emit_data(ci, c.fd, WS_DIR_INGRESS, WS_SYS_SSL_READ, src, 0, 0, n);
	return 0;
}

/* Read's call of runtime.memmove: the plaintext it returns, before it is copied into b. */
SEC("uprobe")
int go_tls_read_copy(struct pt_regs *ctx) { return go_tls_read_emit(ctx, 1); }

/* Fallback: each RET of a Read whose copy could not be found. */
SEC("uprobe")
int go_tls_read_return(struct pt_regs *ctx) { return go_tls_read_emit(ctx, 0); }

#endif
