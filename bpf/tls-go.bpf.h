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
 *      │                         runs is not shipped; Write: emit_data(b) now (below);
 *      │                         save {buf, len, fd, conn_key, dir} in go_calls[(tgid, g)]
 *   each RET of the function ── RAX = n: Read: emit_data(plaintext, n) on the same connection
 *
 * Why Write's plaintext goes out at entry: Go writes from one goroutine and closes from another
 * (HTTP/2 server: frames are written by writeFrameAsync goroutines, the conn closed by the serve
 * loop when the peer hangs up). The peer can read the last response and close, and our close
 * be seen, before the writing goroutine reaches its RET: the fd is then gone and the bytes that
 * were really sent would be lost. Write returns n < len(b) only with an error (the connection is
 * broken); that is counted (go_write_short). A Read that returns after its socket was closed is
 * counted and dropped (go_read_closed): its fd may already name another connection.
 *
 * Why not a uretprobe: it rewrites the return address on the stack, and a goroutine's stack is
 * moved (copied) when it grows: the rewritten address then points nowhere and the process
 * crashes. User space disassembles the functions and puts a plain uprobe on every RET instead.
 * Why (tgid, g) and not the thread: a goroutine blocked in Read is parked and resumes on any
 * thread. R14 holds g in Go code compiled for ABIInternal, at entry and at every RET.
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

/* A Go TLS call between entry and return. Key: {tgid, goroutine's g pointer}. LRU. */
struct go_call_key {
	__u32 tgid;
	__u32 _pad;
	__u64 g;
};
struct go_call {
	__u64 buf;      /* plaintext buffer (b's pointer) */
	__u64 len;      /* len(b) */
	__u64 conn_key; /* the socket's connection at entry */
	__u32 fd;
	__u8 dir;       /* enum ws_direction */
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
	    bpf_probe_read_user(&sysfd, sizeof(sysfd), (void *)(netfd + b->netfd_sysfd)) || sysfd < 0 || sysfd > 0x7fffffff) {
		tls_count(WS_TLS_STAT_GO_NO_FD, 1);
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
	struct go_call_key k = { .tgid = tgid, .g = ctx->r14 };
	struct go_call c = { .buf = ctx->bx, .len = ctx->cx, .conn_key = ci->conn_key, .fd = fd, .dir = dir };
	if (bpf_map_update_elem(&go_calls, &k, &c, BPF_ANY))
		count_drop(WS_DROP_ARGS_MAP_FULL);
	if (dir == WS_DIR_EGRESS && c.len > 0 && c.len < (1ULL << 40)) {
		tls_count(WS_TLS_STAT_CALLS, 1);
		emit_data(ci, fd, dir, WS_SYS_SSL_WRITE, c.buf, 0, 0, c.len);
	}
	return 0;
}

/* func (c *Conn) Read(b []byte) (int, error) and Write likewise. */
SEC("uprobe")
int go_tls_read_enter(struct pt_regs *ctx) { return go_tls_enter(ctx, WS_DIR_INGRESS); }
SEC("uprobe")
int go_tls_write_enter(struct pt_regs *ctx) { return go_tls_enter(ctx, WS_DIR_EGRESS); }

/* At every RET of both functions: RAX = n (bytes read into / written from b). */
SEC("uprobe")
int go_tls_return(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	struct go_call_key k = { .tgid = tgid, .g = ctx->r14 };
	struct go_call *p = bpf_map_lookup_elem(&go_calls, &k);
	if (!p)
		return 0;
	struct go_call c = *p;
	bpf_map_delete_elem(&go_calls, &k);
	long n = ctx->ax;
	if (c.dir == WS_DIR_EGRESS) {
		/* the plaintext went out at entry */
		if (c.len == 0)
			tls_count(WS_TLS_STAT_CALL_EMPTY, 1);
		else if (n < 0 || (__u64)n < c.len)
			tls_count(WS_TLS_STAT_GO_WRITE_SHORT, 1);
		return 0;
	}
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
	emit_data(ci, c.fd, WS_DIR_INGRESS, WS_SYS_SSL_READ, c.buf, 0, 0, n);
	return 0;
}

#endif
