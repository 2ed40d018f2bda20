/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Plaintext of TLS connections, from uprobes on the TLS library in the traced process (no keys).
 * Part of wirescope.bpf.c (included after the data path it reuses: conn_of_fd, emit_data).
 *
 *   SSL_write(ssl, buf, n) entry ── save {ssl, buf, dir} in ssl_calls[pid_tgid]
 *      └─ write(fd, ciphertext)  ── data_exit → tls_socket_bytes(): a call is in flight on this
 *                                   thread → ssl_fds[(tgid, ssl)] = fd, the fd's connection is
 *                                   marked TLS (second OPEN, seq reset), ciphertext not sent
 *   SSL_write return (bytes)     ── fd from the call (or ssl_fds: SSL_read served from the
 *                                   library's buffer makes no syscall) → emit_data(plaintext)
 *
 * The SSL* -> fd link is the socket syscall seen inside the library call on the same thread (as
 * Pixie and OBI do): it needs no knowledge of the library's struct layout, so it holds for every
 * OpenSSL version. The handshake call (SSL_do_handshake, which SSL_connect and SSL_accept call)
 * links it before any plaintext moves.
 *
 * Memory BIOs (node: OpenSSL inside the executable, the socket moved by libuv outside the library
 * calls) never make a syscall inside a call. There the link is the first write of a new connection
 * that follows, on the same thread, a call of a library object without a socket:
 *
 *   SSL_read(ssl) returns, no fd known ── ssl_calls[pid_tgid] kept as UNLINKED {ssl}
 *   write/writev(fd) on the same thread ── the connection has sent nothing yet and the bytes start
 *                                          a TLS handshake record (16 03 0x) → ssl_fds = fd, marked
 *
 * (node's client writes its ClientHello right after the SSL_read that made it; its server, its
 * ServerHello after the SSL_read that consumed the ClientHello). A call of an object still without
 * a socket is counted (no_fd) and its plaintext dropped: the handshake carries none. SSL_free
 * forgets the link, so an SSL* reused at the same address starts unlinked.
 *
 * A memory-BIO connection opened before the probe has no handshake left to see. Its owner reads
 * the ciphertext and decrypts it in the same call chain, on the same thread, before any other
 * read (node: uv__read → TLSWrap::OnStreamRead → Cycle → ClearOut → SSL_read; python's asyncio
 * sslproto: recv → data_received → SSLObject.read). So the thread's last read-like syscall is a
 * candidate, and the first SSL_read after it claims it:
 *
 *   read(fd) of a TCP connection not yet TLS ── cand = {fd, conn_key} if its bytes start a TLS
 *                                               record (type 20-23, 3.x), else no candidate; any
 *                                               other read of the thread replaces it
 *   SSL_read(ssl) entry                      ── takes the candidate (SSL_write keeps it: node's
 *                                               ClearIn writes before ClearOut reads)
 *   its return, ssl without a socket, n > 0  ── the candidate's fd still holds that conn_key, not
 *                                               TLS: ssl_fds = fd, the connection is marked TLS,
 *                                               the plaintext is sent (linked_by_read)
 *
 * The candidate lives in the thread's ssl_calls entry, which the data exit looks up anyway. A
 * read of a thread that has no entry creates one only when it qualifies and its connection was
 * opened before the probe (SSL_NO_CALL). Reads that are not of a tracked TCP connection (pipes,
 * files) do not replace the candidate. A write
 * cannot be linked this way: a write may be queued and made later, after another object's
 * SSL_write on the same thread (node's EncOut under backpressure), so the first request a client
 * sends on such a connection after the probe started is lost (no_fd); its response links it.
 *
 * One set of programs serves every library whose calls look like OpenSSL's (object, buffer,
 * length): the uprobe's attach cookie says which library (enum ws_tls_lib), and user space keeps
 * the table of functions per library (services/probe/native/addon.cc).
 *
 * Uprobes are attached by user space (bpf_program__attach_uprobe_opts, pid -1) once per library
 * file: a uprobe on a file applies to every process that maps it. sys_enter_mmap announces files
 * named like a TLS library mapped executable (WS_EV_TLS_LIB, tls_lib_of_name), so processes
 * started later, and
 * libraries loaded late with dlopen (python's ssl), get the probes without rescanning /proc.
 */
#ifndef WIRESCOPE_TLS_BPF_H
#define WIRESCOPE_TLS_BPF_H

#define PROT_EXEC 4

enum ssl_call_state {
	SSL_IN_CALL = 0,  /* between entry and return */
	SSL_UNLINKED = 1, /* returned without a socket: the thread's next new TLS write links it */
	SSL_NO_CALL = 2,  /* no call yet: only a read candidate (see the top) */
};

/* A TLS library call between entry and return, or the thread's last call of an object without a
 * socket (memory BIO). Key: pid_tgid of the calling thread. */
struct ssl_call {
	__u64 ssl;     /* the library's connection object (SSL*, gnutls_session_t) */
	__u64 buf;     /* plaintext buffer */
	__u64 len_out; /* SSL_*_ex: where the library writes the byte count; 0 for SSL_read/SSL_write */
	__u64 cand_key; /* the thread's last read: its connection, when it may link a memory BIO */
	__s32 cand_fd;  /* ... and its fd, -1 for none */
	__s32 fd;      /* socket seen inside this call, -1 until then */
	__u8 dir;      /* enum ws_direction; 0 for a handshake (no plaintext) */
	__u8 lib;      /* enum ws_tls_lib */
	__u8 state;    /* enum ssl_call_state */
	__u32 num;     /* a write's plaintext length (its third argument) */
	__u32 sent;    /* ciphertext bytes the socket took inside this call (a write's) */
};
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WS_MAX_SSL_CALLS);
	__type(key, __u64);
	__type(value, struct ssl_call);
} ssl_calls SEC(".maps");

/* Socket of a library connection object. Key: {tgid, SSL*}; value: fd. LRU. */
struct ssl_key {
	__u32 tgid;
	__u32 _pad;
	__u64 ssl;
};
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WS_MAX_SSL_FDS);
	__type(key, struct ssl_key);
	__type(value, __u32);
} ssl_fds SEC(".maps");

/* TLS library files already attached by user space: not announced again. Key: {ino, dev}. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WS_MAX_TLS_LIBS);
	__type(key, struct ws_lib_key);
	__type(value, __u8);
} tls_libs_known SEC(".maps");

/* TLS counters by enum ws_tls_stat (bytes for cipher_bytes_saved, calls otherwise). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WS_TLS_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} tls_stats SEC(".maps");

static __always_inline void tls_count(__u32 stat, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&tls_stats, &stat);
	if (v)
		*v += n;
}

/* Marks the fd's connection as TLS: a second open event of the same conn_key with the TLS flag,
 * and the byte counters restart for the plaintext (the bytes counted so far were the handshake). */
static __always_inline void mark_tls(struct conn_info *ci, __u32 tgid, __u32 fd, __u8 lib)
{
	if (ci->flags & WS_CONN_F_TLS)
		return;
	ci->flags |= WS_CONN_F_TLS;
	ci->tls_lib = lib;
	ci->seq[0] = 0;
	ci->seq[1] = 0;
	ci->stream++;
	struct ws_conn_event ev = {};
	fill_hdr(&ev.hdr, WS_EV_OPEN, ci->conn_key);
	struct sock *sk = tcp_sock_of_fd(fd);
	if (sk)
		read_addrs(sk, &ev);
	ev.role = ci->role;
	ev.flags = ci->flags;
	ev.tls_lib = lib;
	ev.fd = fd;
	ev.cgroup_id = bpf_get_current_cgroup_id();
	leader_comm(ev.comm);
	ev.sample_level = ci->sample_level; /* decided at its first open */
	if (!ci->shed && ports_traced(ci->lport, ci->rport) && bpf_ringbuf_output(&events, &ev, sizeof(ev), BPF_RB_FORCE_WAKEUP))
		count_drop(WS_DROP_RINGBUF_FULL);
}

/*
 * Called at the exit of every data syscall on a tracked connection. Inside a TLS library call it
 * links the library object to the fd and marks the connection. Returns 1 when the bytes are
 * ciphertext of a TLS connection (not sent: the uprobes give the plaintext), 0 otherwise.
 */
/* The first n bytes of a data call's buffer (of its first iovec for the vector calls): 0, or -1
 * when they cannot be read. n is a constant at every call site. */
static __always_inline int call_head(const struct call_args *a, __u8 *h, __u32 n)
{
	__u64 p = a->buf;
	switch (a->syscall) {
	case WS_SYS_READ:
	case WS_SYS_WRITE:
	case WS_SYS_RECVFROM:
	case WS_SYS_SENDTO:
		break;
	case WS_SYS_RECVMSG:
	case WS_SYS_SENDMSG: {
		struct user_msghdr m = {};
		if (bpf_probe_read_user(&m, sizeof(m), (void *)p))
			return -1;
		p = (__u64)m.msg_iov;
	}
		/* fallthrough */
	case WS_SYS_READV:
	case WS_SYS_WRITEV: {
		struct iovec v = {};
		if (bpf_probe_read_user(&v, sizeof(v), (void *)p) || v.iov_len < n)
			return -1;
		p = (__u64)v.iov_base;
		break;
	}
	default:
		return -1;
	}
	return bpf_probe_read_user(h, n, (void *)p) ? -1 : 0;
}

/* The first bytes a write sends start a TLS handshake record (content type 22, version 3.x): 1;
 * 2 when the record's first message is a ClientHello (handshake type 1), which may follow
 * cleartext on an in-band upgrade (MySQL's SSL request, PostgreSQL's SSLRequest). */
static __always_inline int starts_tls_handshake(const struct call_args *a)
{
	__u8 h[6] = {};
	if (call_head(a, h, sizeof(h)))
		return 0;
	if (h[0] != 0x16 || h[1] != 0x03 || h[2] > 0x04)
		return 0;
	return h[5] == 0x01 ? 2 : 1;
}

static __always_inline void link_ssl(struct conn_info *ci, __u64 id, __u32 fd, struct ssl_call *c)
{
	struct ssl_key k = { .tgid = id >> 32, .ssl = c->ssl };
	bpf_map_update_elem(&ssl_fds, &k, &fd, BPF_ANY);
	ci->ssl = c->ssl; /* the link goes when the fd's connection does (forget_ssl_link) */
	mark_tls(ci, id >> 32, fd, c->lib);
}

/* The fd's connection is gone (close, exit): its object's link goes too, unless the object was
 * linked to another fd since. SSL_free forgets it as well, but a killed process never calls it. */
static __always_inline void forget_ssl_link(__u32 tgid, __u64 ssl, __u32 fd)
{
	struct ssl_key k = { .tgid = tgid, .ssl = ssl };
	__u32 *f = bpf_map_lookup_elem(&ssl_fds, &k);
	if (f && *f == fd)
		bpf_map_delete_elem(&ssl_fds, &k);
}

/* The bytes a read returned start a TLS record: content type 20..23 (change_cipher_spec, alert,
 * handshake, application_data), version 3.x. */
static __always_inline int read_starts_tls_record(const struct call_args *a)
{
	__u8 h[3] = {};
	if (call_head(a, h, sizeof(h)))
		return 0;
	return h[0] >= 20 && h[0] <= 23 && h[1] == 0x03 && h[2] <= 0x04;
}

/* The bytes of a call (either way) start a whole TLS record header: content type 20..23,
 * version 3.x and a record length of 1..2^14 + 2048 (RFC 8446 5.2). */
static __always_inline int call_starts_tls_header(const struct call_args *a)
{
	__u8 h[5] = {};
	if (call_head(a, h, sizeof(h)))
		return 0;
	__u32 len = ((__u32)h[3] << 8) | h[4];
	return h[0] >= 20 && h[0] <= 23 && h[1] == 0x03 && h[2] <= 0x04 && len >= 1 && len <= 16384 + 2048;
}

/*
 * A connection first seen mid-way (opened before the probe's programs were attached) whose first
 * bytes seen in a direction are a TLS record: its ciphertext is held back (not sent, counted in
 * cipher_held_bytes) until its plaintext comes (a TLS open through the library's uprobes). A
 * decoder given the middle of a TLS stream with no handshake before it can only misread it (the
 * MySQL decoder took an encrypted COM_QUERY, `17 03 03 00 36`, for a request). A connection seen
 * from its connect/accept is not held: its handshake precedes a TLS open, or follows cleartext
 * the decoder can judge (an in-band upgrade). Off unless user space set hold_inferred_cipher
 * (the probe service; `wirescope capture` writes ciphertext as it travels).
 */
static __always_inline int hold_inferred_cipher_bytes(struct conn_info *ci, long ret, __u8 dir, const struct call_args *a)
{
	if (!hold_inferred_cipher || !(ci->flags & WS_CONN_F_INFERRED))
		return 0;
	if (!ci->cipher_held) {
		if (ci->seq[dir == WS_DIR_EGRESS ? 0 : 1] != 0 || ret < 5 || !call_starts_tls_header(a))
			return 0;
		ci->cipher_held = 1;
		tls_count(WS_TLS_STAT_HELD_CONNS, 1);
	}
	tls_count(WS_TLS_STAT_HELD_BYTES, ret);
	return 1;
}

static __always_inline int tls_socket_bytes(struct conn_info *ci, __u64 id, __u32 fd, long ret, __u8 dir,
					    const struct call_args *a)
{
	struct ssl_call *c = bpf_map_lookup_elem(&ssl_calls, &id);
	if (dir == WS_DIR_INGRESS && (!c || c->state != SSL_IN_CALL)) {
		/* the thread's last read: a candidate for the next SSL_read of an unlinked object. The
		 * bytes are looked at only on a thread that made TLS calls, or on a connection opened
		 * before the probe: cleartext elsewhere costs nothing more */
		int cand = 0;
		if (!(ci->flags & WS_CONN_F_TLS) && (c || (ci->flags & WS_CONN_F_INFERRED)))
			cand = read_starts_tls_record(a);
		if (c) {
			c->cand_fd = cand ? (__s32)fd : -1;
			c->cand_key = ci->conn_key;
		} else if (cand) {
			struct ssl_call n = { .cand_fd = fd, .cand_key = ci->conn_key, .fd = -1, .state = SSL_NO_CALL };
			bpf_map_update_elem(&ssl_calls, &id, &n, BPF_ANY);
		}
	}
	if (c) {
		if (c->state == SSL_IN_CALL) {
			c->fd = fd;
			if (dir == WS_DIR_EGRESS && ret > 0)
				c->sent = c->sent + ret < c->sent ? ~0U : c->sent + (__u32)ret;
			link_ssl(ci, id, fd, c);
		} else if (c->state == SSL_UNLINKED && dir == WS_DIR_EGRESS && !(ci->flags & WS_CONN_F_TLS) && starts_tls_handshake(a) > (ci->seq[0] == 0 ? 0 : 1)) {
			/* memory BIO: the handshake the object's last call produced, written by its owner as
			 * the connection's first bytes, or a ClientHello after cleartext (in-band upgrade) */
			link_ssl(ci, id, fd, c);
			bpf_map_delete_elem(&ssl_calls, &id);
			tls_count(WS_TLS_STAT_LINKED_AFTER, 1);
		}
	}
	if (!(ci->flags & WS_CONN_F_TLS))
		return hold_inferred_cipher_bytes(ci, ret, dir, a);
	tls_count(WS_TLS_STAT_CIPHER_BYTES, ret);
	return 1;
}

static __always_inline int ssl_enter(void *ctx, __u64 ssl, __u64 buf, __u64 len_out, __u8 dir, __u32 num)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (!process_traced(id >> 32))
		return 0;
	struct ssl_call c = { .ssl = ssl, .buf = buf, .len_out = len_out, .cand_fd = -1, .fd = -1, .dir = dir, .lib = bpf_get_attach_cookie(ctx), .num = num };
	/* the read candidate passes on to this call (an SSL_read takes it, an SSL_write keeps it) */
	struct ssl_call *prev = bpf_map_lookup_elem(&ssl_calls, &id);
	if (prev) {
		c.cand_fd = prev->cand_fd;
		c.cand_key = prev->cand_key;
	}
	if (bpf_map_update_elem(&ssl_calls, &id, &c, BPF_ANY))
		count_drop(WS_DROP_ARGS_MAP_FULL);
	return 0;
}

/* An SSL_read of an object without a socket, after the thread read a connection that may be its
 * own: links them when that fd still holds the same connection and it is not TLS yet. */
static __always_inline int link_by_read(struct ssl_call *c, __u64 id)
{
	struct conn_info *ci = conn_of_fd(id >> 32, c->cand_fd);
	if (!ci || ci->conn_key != c->cand_key || (ci->flags & WS_CONN_F_TLS))
		return 0;
	link_ssl(ci, id, c->cand_fd, c);
	tls_count(WS_TLS_STAT_LINKED_BY_READ, 1);
	return 1;
}

/* ret: SSL_read/SSL_write's return (bytes, or <= 0), or SSL_*_ex's (1 = success, count in *len_out). */
static __always_inline int ssl_exit(long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct ssl_call *p = bpf_map_lookup_elem(&ssl_calls, &id);
	if (!p || p->state != SSL_IN_CALL)
		return 0;
	struct ssl_call c = *p;
	__u64 n = 0;
	if (c.len_out) {
		if (ret == 1 && bpf_probe_read_user(&n, sizeof(n), (void *)c.len_out))
			n = 0;
	} else if (ret > 0 && c.dir) {
		n = ret;
	}
	__u32 tgid = id >> 32;
	__u32 fd;
	if (c.fd >= 0) {
		fd = c.fd;
	} else {
		struct ssl_key k = { .tgid = tgid, .ssl = c.ssl };
		__u32 *f = bpf_map_lookup_elem(&ssl_fds, &k);
		if (f) {
			fd = *f;
		} else if (c.dir == WS_DIR_INGRESS && n && c.cand_fd >= 0 && link_by_read(&c, id)) {
			/* the object's ciphertext came from the thread's last read (see the top) */
			fd = c.cand_fd;
		} else {
			/* no socket yet: a memory BIO's owner writes the handshake next (see the top); an
			 * SSL_read took the read candidate, linked or not */
			p->state = SSL_UNLINKED;
			if (c.dir == WS_DIR_INGRESS)
				p->cand_fd = -1;
			if (n)
				tls_count(data_attached ? WS_TLS_STAT_NO_FD : WS_TLS_STAT_NO_FD_START, 1);
			else if (c.dir)
				tls_count(WS_TLS_STAT_CALL_EMPTY, 1);
			return 0;
		}
	}
	bpf_map_delete_elem(&ssl_calls, &id);
	if (n == 0) {
		if (c.dir)
			tls_count(WS_TLS_STAT_CALL_EMPTY, 1);
		return 0;
	}
	struct conn_info *ci = conn_of_fd(tgid, fd);
	if (!ci) {
		tls_count(WS_TLS_STAT_NOT_TCP, 1);
		return 0;
	}
	mark_tls(ci, tgid, fd, c.lib);
	tls_count(WS_TLS_STAT_CALLS, 1);
	emit_data(ci, fd, c.dir, c.dir == WS_DIR_EGRESS ? WS_SYS_SSL_WRITE : WS_SYS_SSL_READ, c.buf, 0, 0, n);
	return 0;
}

/* OpenSSL: int SSL_write(SSL *s, const void *buf, int num); int SSL_read(SSL *s, void *buf, int num);
 * int SSL_write_ex(SSL *s, const void *buf, size_t num, size_t *written); SSL_read_ex likewise.
 * SSL_read and SSL_read_ex do not call each other (both call ssl_read_internal), nor do the writes.
 * ssl_write_enter serves gnutls_record_send(session, data, size_t size) too: the low 32 bits of
 * the third argument are the length either way (an int's upper half is not defined). */
SEC("uprobe")
int BPF_KPROBE(ssl_write_enter, void *ssl, const void *buf, __u64 num)
{
	return ssl_enter(ctx, (__u64)ssl, (__u64)buf, 0, WS_DIR_EGRESS, (__u32)num);
}
SEC("uprobe")
int BPF_KPROBE(ssl_write_ex_enter, void *ssl, const void *buf, __u64 num, void *written)
{
	return ssl_enter(ctx, (__u64)ssl, (__u64)buf, (__u64)written, WS_DIR_EGRESS, num > 0xffffffffULL ? 0xffffffffU : (__u32)num);
}
SEC("uprobe")
int BPF_KPROBE(ssl_read_enter, void *ssl, void *buf) { return ssl_enter(ctx, (__u64)ssl, (__u64)buf, 0, WS_DIR_INGRESS, 0); }
SEC("uprobe")
int BPF_KPROBE(ssl_read_ex_enter, void *ssl, void *buf, __u64 num, void *readbytes)
{
	return ssl_enter(ctx, (__u64)ssl, (__u64)buf, (__u64)readbytes, WS_DIR_INGRESS, 0);
}
/* int SSL_do_handshake(SSL *s): no plaintext, but the handshake's syscalls link the object to
 * its socket before the first read or write. */
SEC("uprobe")
int BPF_KPROBE(ssl_handshake_enter, void *ssl) { return ssl_enter(ctx, (__u64)ssl, 0, 0, 0, 0); }
/* One return program serves every call: the saved entry says which kind it was. They return an
 * int (OpenSSL) or a small ssize_t (GnuTLS): the low 32 bits are the result (-1 is 0xffffffff). */
SEC("uretprobe")
int BPF_KRETPROBE(ssl_return, long ret) { return ssl_exit((int)ret); }

/* void SSL_free(SSL *s): the object's link is forgotten (its address may serve another
 * connection next), and a thread's unlinked call of it too. */
SEC("uprobe")
int BPF_KPROBE(ssl_free_enter, void *ssl)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct ssl_key k = { .tgid = id >> 32, .ssl = (__u64)ssl };
	bpf_map_delete_elem(&ssl_fds, &k);
	struct ssl_call *c = bpf_map_lookup_elem(&ssl_calls, &id);
	if (c && c->state == SSL_UNLINKED && c->ssl == (__u64)ssl)
		bpf_map_delete_elem(&ssl_calls, &id);
	return 0;
}

/* The plaintext of a write its thread died in (see tls_forget_thread). Out of line: its copy's
 * locals stay off task_exit's own frame (the verifier's combined stack of task_exit and its fd
 * walk's callbacks has no room for them). */
static __noinline void tls_write_at_exit(__u32 tgid, __s32 fd, __u64 buf, __u32 n)
{
	struct conn_info *ci = conn_of_fd(tgid, fd);
	if (!ci || !(ci->flags & WS_CONN_F_TLS)) {
		tls_count(WS_TLS_STAT_ABANDONED, 1);
		return;
	}
	tls_count(WS_TLS_STAT_WRITE_AT_EXIT, 1);
	emit_data(ci, fd, WS_DIR_EGRESS, WS_SYS_SSL_WRITE, buf, 0, 0, n);
}

/*
 * A thread that exits inside a library call (killed mid-read) never returns: forget its call, so
 * a later thread with the same id does not inherit it (called by task_exit, wirescope.bpf.c).
 * A write the socket had taken ciphertext of was sent, in part or whole, though its return never
 * comes (a client SIGKILLed once the server had its request): its plaintext goes out now, up to
 * the ciphertext bytes sent (a record's plaintext is shorter than its ciphertext, so this is the
 * part sent plus at most a record's overhead). The thread's memory is still mapped at
 * sched_process_exit on the kernel this was tested on (6.18: test/probe-tls); on a kernel that
 * unmaps it first, the copy fails and the bytes are a stated gap counted as
 * drops.kernel.read_user: never silent.
 */
static __always_inline void tls_forget_thread(__u64 id)
{
	struct ssl_call *c = bpf_map_lookup_elem(&ssl_calls, &id);
	if (!c)
		return;
	/* what the write needs, read before the entry goes */
	int in_call = c->state == SSL_IN_CALL;
	__s32 fd = c->fd;
	__u64 buf = c->buf;
	__u32 n = c->dir == WS_DIR_EGRESS ? (c->num < c->sent ? c->num : c->sent) : 0;
	bpf_map_delete_elem(&ssl_calls, &id);
	if (!in_call)
		return;
	if (n && fd >= 0)
		tls_write_at_exit(id >> 32, fd, buf, n);
	else
		tls_count(WS_TLS_STAT_ABANDONED, 1);
}

/* The TLS library a mapped file's name says it is (WS_TLS_FILES: "libssl.so.3" starts with
 * "libssl.so"), WS_TLS_NONE for one the probe cannot read, -1 for any other file. */
static __always_inline int starts_with(const char *name, const char *want, int n)
{
	for (int i = 0; i < n; i++)
		if (name[i] != want[i])
			return 0;
	return 1;
}
#define NAME_IS(name, lit) starts_with(name, lit, sizeof(lit) - 1)
static __always_inline int tls_lib_of_name(const char *name)
{
#define WS_TLS_FILE_MATCH(prefix, lib, what) \
	if (NAME_IS(name, prefix))           \
		return WS_TLS_##lib;
	WS_TLS_FILES(WS_TLS_FILE_MATCH)
#undef WS_TLS_FILE_MATCH
	return -1;
}

/* A file mapped executable: announce a TLS library user space has not attached yet. Entry is
 * enough (the fd is open; a failed mmap only costs a spurious announcement). */
SEC("tracepoint/syscalls/sys_enter_mmap")
int tls_enter_mmap(struct trace_event_raw_sys_enter *ctx)
{
	if (!(ctx->args[2] & PROT_EXEC) || (int)ctx->args[4] < 0)
		return 0;
	struct file *file = file_of_fd(ctx->args[4]);
	if (!file)
		return 0;
	char name[16] = {};
	const unsigned char *dname = BPF_CORE_READ(file, f_path.dentry, d_name.name);
	if (bpf_probe_read_kernel_str(name, sizeof(name), dname) < 0)
		return 0;
	int lib = tls_lib_of_name(name);
	if (lib < 0)
		return 0;
	struct ws_lib_key k = {};
	k.ino = BPF_CORE_READ(file, f_inode, i_ino);
	k.dev = BPF_CORE_READ(file, f_inode, i_sb, s_dev);
	if (bpf_map_lookup_elem(&tls_libs_known, &k))
		return 0;
	struct ws_lib_event ev = {};
	fill_hdr(&ev.hdr, WS_EV_TLS_LIB, 0);
	ev.ino = k.ino;
	ev.dev = k.dev;
	ev.tls_lib = lib;
	tls_count(WS_TLS_STAT_LIB_MAPPED, 1);
	if (bpf_ringbuf_output(&events, &ev, sizeof(ev), BPF_RB_FORCE_WAKEUP))
		count_drop(WS_DROP_RINGBUF_FULL);
	return 0;
}

/* Executable files user space has inspected (whatever it found): not announced again.
 * Key: {ino, dev}. LRU: an evicted file is announced and inspected once more. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WS_MAX_EXECS);
	__type(key, struct ws_lib_key);
	__type(value, __u8);
} exec_known SEC(".maps");

/* A process started an executable: announce its file (dev, ino) until user space has inspected
 * it. TLS code linked into the executable (Go crypto/tls) has no library file to map, so this is
 * how processes started after the probe get their uprobes. */
SEC("tracepoint/sched/sched_process_exec")
int tls_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	if ((id >> 32) == self_tgid)
		return 0;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task_btf();
	struct file *exe = BPF_CORE_READ(task, mm, exe_file);
	if (!exe)
		return 0;
	struct ws_lib_key k = {};
	k.ino = BPF_CORE_READ(exe, f_inode, i_ino);
	k.dev = BPF_CORE_READ(exe, f_inode, i_sb, s_dev);
	if (bpf_map_lookup_elem(&exec_known, &k))
		return 0;
	struct ws_exec_event ev = {};
	fill_hdr(&ev.hdr, WS_EV_EXEC, 0);
	ev.ino = k.ino;
	ev.dev = k.dev;
	bpf_probe_read_kernel_str(ev.filename, sizeof(ev.filename), (void *)ctx + (ctx->__data_loc_filename & 0xffff));
	tls_count(WS_TLS_STAT_EXEC_ANNOUNCED, 1);
	if (bpf_ringbuf_output(&events, &ev, sizeof(ev), BPF_RB_FORCE_WAKEUP))
		count_drop(WS_DROP_RINGBUF_FULL);
	return 0;
}

#endif
