// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Wirescope socket tracer: syscall tracepoints (this project targets kernels without kprobes),
 * CO-RE through vmlinux.h.
 *
 *   sys_enter_<call>  ── process filter ──▶ save args in active_calls (nothing else)
 *   sys_exit_<call>   ── look up args, real byte count from ret
 *                        fd ─▶ conn_by_fd hit? ─▶ data events (chunks, seq)
 *                           └▶ miss: nonsock cache hit? skip
 *                                    task->files->fdt->fd[fd] ─▶ file ─▶ socket ─▶ sock
 *                                    TCP over IPv4/IPv6? track (inferred role) : cache as nonsock
 *
 * Not covered: io_uring (no syscalls to trace), sendmmsg/recvmmsg (UDP-oriented), splice.
 * TLS: plaintext from uprobes on the TLS library (tls.bpf.h), attached by user space per file.
 * sendfile on a traced socket is recorded as a gap of the right size (the bytes come from a file).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "wirescope.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define SOCK_STREAM 1
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define EINPROGRESS 115

#ifndef barrier_var
#define barrier_var(var) asm volatile("" : "=r"(var) : "0"(var))
#endif

/* ---- tunables: set by user space in rodata before load ---- */
const volatile __u32 self_tgid = 0;                 /* the probe itself: never traced */
const volatile __u32 chunk_bytes = WS_MAX_CHUNK;    /* payload cap per event, <= WS_MAX_CHUNK */
const volatile __u32 max_bytes_per_call = WS_DEFAULT_MAX_BYTES_PER_CALL; /* bytes copied per syscall; the rest is a gap */
const volatile __u64 conn_key_base = 0;             /* high bits that make conn keys unique per instance */
/* A node: the network namespace (its inode, as /proc/<pid>/ns/net names it) whose processes and
 * sockets this probe owns; 0 = every namespace (the whole host). Several probes with distinct
 * namespaces run side by side, each with its own maps and links, and never see each other's
 * connections. */
const volatile __u32 netns_ino = 0;
/* Hold back the ciphertext of a connection first seen mid-way whose first bytes are a TLS record
 * (tls.bpf.h, hold_inferred_cipher_bytes): set by the probe service, off for `wirescope capture`. */
const volatile __u8 hold_inferred_cipher = 0;
/* Wake the consumer only once this much data waits: a wakeup per event would cost the traced
 * process a context switch per syscall. User space also drains on a short timer, so a quiet ring
 * is still read within its batch age. 0 = wake on every event. */
const volatile __u64 wakeup_bytes = 256 * 1024;

/* next conn_key (low bits); shared by all CPUs, incremented atomically */
__u64 next_conn_seq = 0;
/* Set by user space once the syscall programs are attached (the TLS uprobes come first, at start:
 * docs/probe.md "Start"): a library call before it has no socket call to link it. */
__u32 data_attached = 0;

/* ---- maps ---- */

/* Events to user space: ws_data_event (variable length) and ws_conn_event records. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, WS_DEFAULT_RINGBUF_BYTES);
} events SEC(".maps");

/* Arguments of syscalls between enter and exit. Key: pid_tgid of the calling thread. */
struct call_args {
	__u64 buf;      /* buffer, iovec array, or user_msghdr pointer */
	__u32 fd;
	__u32 iovcnt;
	__u8 syscall;   /* enum ws_syscall */
};
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WS_MAX_ACTIVE_CALLS);
	__type(key, __u64);
	__type(value, struct call_args);
} active_calls SEC(".maps");

/* A tracked TCP connection. Key: {tgid, fd}; replaced on connect/accept, removed on close. */
struct conn_info {
	__u64 conn_key;
	__u64 seq[2];      /* [0] egress, [1] ingress: bytes seen so far */
	__u16 lport;
	__u16 rport;
	__u8 role;
	__u8 flags;
	__u8 tls_lib;      /* enum ws_tls_lib once flags has WS_CONN_F_TLS */
	__u8 shed;         /* enum ws_shed_reason: not observed (0 = observed) */
	__u8 turns;        /* request/response turns are clean boundaries (user space followed its
			    * framing: it had a copy policy); last_dir: direction of its last call */
	__u8 last_dir;
	__u16 sample_level; /* the level it was decided under */
	__u32 win_calls;   /* fairness: data calls and copied bytes since win_start */
	__u64 win_start;
	__u64 win_bytes;
	__u64 peer;        /* key of the peer_decision this end left for the other end (0: none):
			    * removed at close, so decisions whose other end never comes do not pile up */
	__u64 ssl;         /* the TLS library object last linked to this fd (ssl_fds), forgotten at close */
	__u64 go_g;        /* Go: the goroutine of the last Read entered on it (go_calls), forgotten at close */
	__u8 cipher_held;  /* first seen mid-way as TLS records: its ciphertext is not sent (tls.bpf.h) */
	__u8 stream;       /* byte streams restarted from seq 0 (TLS, reopen), mod 256: copy policies
			    * declared for an earlier one no longer apply */
	__u8 _pad[2];
	__u32 epoch;       /* the ws_shed_cfg.epoch it was decided in */
};
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WS_MAX_CONNS);
	__type(key, struct ws_fd_key);
	__type(value, struct conn_info);
} conn_by_fd SEC(".maps");

/* Copy policies (struct ws_copy_policy) of connections user space follows. Key: conn_key. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WS_MAX_CONNS);
	__type(key, __u64);
	__type(value, struct ws_copy_policy);
} copy_policy SEC(".maps");

/* fds this probe does not trace: not TCP sockets, or (netns_ino set) sockets of another network
 * namespace, so the exit path skips them with one lookup.
 * Key: {tgid, fd}; removed on close (the fd number may then become a socket). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WS_MAX_NONSOCK);
	__type(key, struct ws_fd_key);
	__type(value, __u8);
} nonsock_fds SEC(".maps");

/* Kernel-side drops, by enum ws_drop_reason. Per-CPU so counting never contends. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WS_DROP_MAX);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

/* Shed connections, by enum ws_shed_reason: the layout of wirescope.h WS_SHED_STATS. Per-CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WS_SHED_STATS);
	__type(key, __u32);
	__type(value, __u64);
} shed_stats SEC(".maps");

/* Requests served while shed, by server process and port (struct ws_shed_served_key). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, WS_MAX_SHED_SERVED);
	__type(key, struct ws_shed_served_key);
	__type(value, __u64);
} shed_served SEC(".maps");

/* Overload policy, one entry: struct ws_shed_cfg. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ws_shed_cfg);
} shed_cfg SEC(".maps");

/* Sampling accumulator and fairness window of a process. Key: tgid. */
struct proc_state {
	__u64 win_start;
	__u64 win_bytes;
	__u32 acc;         /* systematic sampling: a new connection adds the level, observed on overflow */
	__u32 fd_entries;  /* it has had entries in conn_by_fd or nonsock_fds: its exec looks for them */
	__u32 announced;   /* an open of it reached the ring (WS_CONN_F_NEW_PROC): later opens wake no one */
	__u32 epoch;       /* the ws_shed_cfg.epoch its accumulator was started in */
};
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WS_MAX_PROCS);
	__type(key, __u32);
	__type(value, struct proc_state);
} proc_state SEC(".maps");

/* A connection's 4-tuple with its two ends in a fixed order, the same from both ends. */
struct tuple_key {
	__u8 addr_a[16];
	__u8 addr_b[16];
	__u16 port_a;
	__u16 port_b;
	__u32 _pad;
};
/* The decision taken at the first end of a connection, for its other end on this node. */
struct peer_decision {
	__u64 ts_ns;
	__u16 level;
	__u8 shed;
	__u32 epoch; /* the sampling epoch it was taken in: the end that takes it is in that epoch too */
};
/* Key: a 64-bit hash of the connection's tuple_key (never 0). Taken (deleted) by the second end;
 * removed by the first end at its close (conn_info.peer) when the second end never came (not on
 * this node, or filtered out). LRU only as a last resort. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WS_MAX_PEER_DECISIONS);
	__type(key, __u64);
	__type(value, struct peer_decision);
} peer_decision SEC(".maps");

/* State of one syscall's copy loop. It lives in a map value, not on the stack, so the verifier
 * sees its fields as unknown scalars and checks the bpf_loop callback once instead of exploring
 * every concrete value. */
struct copy_state {
	__u64 iov;        /* user iovec array, or 0 for a plain buffer */
	__u32 iovcnt;
	__u32 iov_idx;
	__u64 cur_base;   /* current segment */
	__u64 cur_len;
	__u64 cur_off;
	__u64 to_copy;    /* bytes still to copy (limited by max_bytes_per_call) */
	__u64 uncopied;   /* bytes of the call beyond max_bytes_per_call */
	__u64 seq;
	__u32 cap;
	__u32 fill;       /* payload bytes gathered for the event being built */
	__u64 skip;       /* bytes to pass over before copying again (the middle of a capped call) */
	__u64 lost_iov;   /* the iovecs could not be followed: the rest of the call is a gap */
};

/* Scratch space for building one data event (too big for the 512-byte stack), per CPU. A chunk
 * is filled from several iovec segments, so a copy lands at payload + fill with fill < cap: the
 * spill area keeps every such copy inside the map value, which is what the verifier checks. */
struct scratch {
	struct copy_state st;
	struct ws_data_event ev;
	__u8 spill[WS_MAX_CHUNK];
};
/* One entry per CPU, key: CPU id. A plain array, not a per-CPU one: a per-CPU value is limited to
 * 32 KiB, and the scratch is bigger. Tracepoint programs run with migration disabled, so a CPU's
 * entry has one user at a time. max_entries is set to the number of possible CPUs at load. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} data_scratch SEC(".maps");

static __always_inline struct scratch *get_scratch(void)
{
	__u32 cpu = bpf_get_smp_processor_id();
	return bpf_map_lookup_elem(&data_scratch, &cpu);
}

/* Allow-list switches, one entry: struct ws_filter_cfg. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ws_filter_cfg);
} filter_cfg SEC(".maps");

/* Filters, value WS_FILTER_ALLOW or WS_FILTER_DENY. Keys: tgid / leader comm / cgroup id / port. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WS_MAX_FILTER);
	__type(key, __u32);
	__type(value, __u8);
} filter_pids SEC(".maps");
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WS_MAX_FILTER);
	__type(key, char[WS_COMM_LEN]);
	__type(value, __u8);
} filter_comms SEC(".maps");
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WS_MAX_FILTER);
	__type(key, __u64);
	__type(value, __u8);
} filter_cgroups SEC(".maps");
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WS_MAX_FILTER);
	__type(key, __u16);
	__type(value, __u8);
} filter_ports SEC(".maps");

/* Local ports in LISTEN state when the probe started (kept fresh by user space).
 * Key: port (host order). A pre-existing connection on one of them is the server side. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WS_MAX_LISTEN_PORTS);
	__type(key, __u16);
	__type(value, __u8);
} listen_ports SEC(".maps");

static __always_inline __u64 rb_flags(void)
{
	if (!wakeup_bytes)
		return 0;
	return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

static __always_inline void count_drop(__u32 reason)
{
	__u64 *v = bpf_map_lookup_elem(&drops, &reason);
	if (v)
		*v += 1;
}

static __always_inline struct ws_filter_cfg *get_cfg(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&filter_cfg, &zero);
}

static __always_inline void leader_comm(char *comm)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task_btf();
	struct task_struct *leader = BPF_CORE_READ(task, group_leader);
	bpf_probe_read_kernel_str(comm, WS_COMM_LEN, &leader->comm);
}

/* With a node's namespace set: 1 when the current process lives in it (its sockets almost always
 * do; tcp_sock_of_fd checks each socket's own namespace for the rest). */
static __always_inline int in_node(void)
{
	if (!netns_ino)
		return 1;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task_btf();
	return BPF_CORE_READ(task, nsproxy, net_ns, ns.inum) == netns_ino;
}

/* Process-level filter, evaluated at syscall entry: returns 1 when this process is traced. */
static __always_inline int process_traced(__u32 tgid)
{
	if (tgid == self_tgid)
		return 0;
	/* another node's process: nothing saved at entry, so it costs one lookup of its namespace */
	if (!in_node())
		return 0;
	struct ws_filter_cfg *cfg = get_cfg();
	__u8 *act = bpf_map_lookup_elem(&filter_pids, &tgid);
	if (act && *act == WS_FILTER_DENY)
		return 0;
	if (cfg && cfg->allow_pids_on && !(act && *act == WS_FILTER_ALLOW))
		return 0;

	char comm[WS_COMM_LEN] = {};
	leader_comm(comm);
	act = bpf_map_lookup_elem(&filter_comms, comm);
	if (act && *act == WS_FILTER_DENY)
		return 0;
	if (cfg && cfg->allow_comms_on && !(act && *act == WS_FILTER_ALLOW))
		return 0;

	__u64 cg = bpf_get_current_cgroup_id();
	act = bpf_map_lookup_elem(&filter_cgroups, &cg);
	if (act && *act == WS_FILTER_DENY)
		return 0;
	if (cfg && cfg->allow_cgroups_on && !(act && *act == WS_FILTER_ALLOW))
		return 0;
	return 1;
}

/* Port filter, evaluated per event on the connection's ports. */
static __always_inline int ports_traced(__u16 lport, __u16 rport)
{
	__u8 *a = bpf_map_lookup_elem(&filter_ports, &lport);
	__u8 *b = bpf_map_lookup_elem(&filter_ports, &rport);
	if ((a && *a == WS_FILTER_DENY) || (b && *b == WS_FILTER_DENY))
		return 0;
	struct ws_filter_cfg *cfg = get_cfg();
	if (cfg && cfg->allow_ports_on && !((a && *a == WS_FILTER_ALLOW) || (b && *b == WS_FILTER_ALLOW)))
		return 0;
	return 1;
}

/* fd of the current process -> struct file, or NULL. */
static __always_inline struct file *file_of_fd(__u32 fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task_btf();
	struct files_struct *files = BPF_CORE_READ(task, files);
	struct fdtable *fdt = BPF_CORE_READ(files, fdt);
	unsigned int max_fds = BPF_CORE_READ(fdt, max_fds);
	if (fd >= max_fds)
		return NULL;
	struct file **fdarr = BPF_CORE_READ(fdt, fd);
	struct file *file = NULL;
	if (bpf_probe_read_kernel(&file, sizeof(file), &fdarr[fd]))
		return NULL;
	return file;
}

/* fd -> struct sock of a TCP socket over IPv4/IPv6, or NULL. */
static __always_inline struct sock *tcp_sock_of_fd(__u32 fd)
{
	struct file *file = file_of_fd(fd);
	if (!file)
		return NULL;
	umode_t mode = BPF_CORE_READ(file, f_inode, i_mode);
	if ((mode & S_IFMT) != S_IFSOCK)
		return NULL;
	struct socket *sock = BPF_CORE_READ(file, private_data);
	if (!sock)
		return NULL;
	struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return NULL;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return NULL;
	__u16 type = BPF_CORE_READ(sk, sk_type);
	__u16 proto = BPF_CORE_READ(sk, sk_protocol);
	if (type != SOCK_STREAM || proto != IPPROTO_TCP)
		return NULL;
	/* a socket of another node, held by one of this node's processes (made before a setns, or
	 * passed over a unix socket): the namespace it talks in is not ours */
	if (netns_ino && BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum) != netns_ino)
		return NULL;
	return sk;
}

static __always_inline void read_addrs(struct sock *sk, struct ws_conn_event *ev)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	ev->family = family;
	ev->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	ev->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET) {
		__u32 l = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__u32 r = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memcpy(ev->laddr, &l, 4);
		__builtin_memcpy(ev->raddr, &r, 4);
	} else {
		BPF_CORE_READ_INTO(&ev->laddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&ev->raddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	}
}

static __always_inline void fill_hdr(struct ws_event_hdr *h, __u32 type, __u64 conn_key)
{
	__u64 id = bpf_get_current_pid_tgid();
	h->type = type;
	h->tgid = id >> 32;
	h->tid = (__u32)id;
	h->_pad0 = 0;
	h->ts_ns = bpf_ktime_get_ns();
	h->conn_key = conn_key;
}

static __always_inline struct ws_shed_cfg *get_shed_cfg(void)
{
	__u32 zero = 0;
	struct ws_shed_cfg *c = bpf_map_lookup_elem(&shed_cfg, &zero);
	return c && c->interval_ns ? c : NULL;
}

static __always_inline void shed_count(__u32 idx, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&shed_stats, &idx);
	if (v)
		*v += n;
}

/* One more request served while shed by this server process on this port (port 0: one more
 * answered at one of the process's client ends). */
static __always_inline void shed_served_count(__u32 tgid, __u16 port)
{
	struct ws_shed_served_key k = { .tgid = tgid, .port = port };
	__u64 *v = bpf_map_lookup_elem(&shed_served, &k);
	if (v) {
		*v += 1;
		return;
	}
	__u64 one = 1;
	/* (another CPU may have made the entry in between: then this CPU's slot of it is counted) */
	if (bpf_map_update_elem(&shed_served, &k, &one, BPF_NOEXIST)) {
		v = bpf_map_lookup_elem(&shed_served, &k);
		if (v)
			*v += 1;
	}
}

/* A process's state, created with its sampling phase (a hash of the tgid) on first use. */
static __always_inline struct proc_state *proc_of(__u32 tgid)
{
	struct proc_state *ps = bpf_map_lookup_elem(&proc_state, &tgid);
	if (ps)
		return ps;
	struct proc_state init = {};
	init.acc = (__u32)(((__u64)tgid * 0x9E3779B97F4A7C15ULL) >> 40) % WS_SAMPLE_ONE;
	bpf_map_update_elem(&proc_state, &tgid, &init, BPF_NOEXIST);
	return bpf_map_lookup_elem(&proc_state, &tgid);
}

/* The process has an entry keyed by one of its fds (conn_by_fd, nonsock_fds): an exec must look
 * for the ones it closed. Most execs are of a child just forked, which has none, and skip the walk. */
static __always_inline void note_fd_entry(__u32 tgid)
{
	struct proc_state *ps = proc_of(tgid);
	if (ps && !ps->fd_entries)
		ps->fd_entries = 1;
}

static __always_inline void tuple_of(struct ws_conn_event *ev, struct tuple_key *k)
{
	__u64 l0, l1, r0, r1;
	__builtin_memcpy(&l0, ev->laddr, 8);
	__builtin_memcpy(&l1, ev->laddr + 8, 8);
	__builtin_memcpy(&r0, ev->raddr, 8);
	__builtin_memcpy(&r1, ev->raddr + 8, 8);
	int local_first = ev->lport < ev->rport ||
			  (ev->lport == ev->rport && (l0 < r0 || (l0 == r0 && l1 <= r1)));
	if (local_first) {
		__builtin_memcpy(k->addr_a, ev->laddr, 16);
		__builtin_memcpy(k->addr_b, ev->raddr, 16);
		k->port_a = ev->lport;
		k->port_b = ev->rport;
	} else {
		__builtin_memcpy(k->addr_a, ev->raddr, 16);
		__builtin_memcpy(k->addr_b, ev->laddr, 16);
		k->port_a = ev->rport;
		k->port_b = ev->lport;
	}
	k->_pad = 0;
}

/* The key of a connection's peer_decision: a 64-bit hash of its tuple_key, the same from both
 * ends, never 0. Small enough to keep in conn_info, so the end that left a decision removes it at
 * its close (16,384 decisions in 2^64: a collision is not a concern). */
static __always_inline __u64 peer_key_of(struct ws_conn_event *ev)
{
	struct tuple_key tk = {};
	tuple_of(ev, &tk);
	__u64 w[5];
	__builtin_memcpy(w, &tk, sizeof(w));
	__u64 h = 0xcbf29ce484222325ULL;
	for (int i = 0; i < 5; i++) {
		h = (h ^ w[i]) * 0x9E3779B97F4A7C15ULL;
		h ^= h >> 29;
	}
	return h ? h : 1;
}

/* Whether a new connection is observed (0) or shed (enum ws_shed_reason), taken before any of
 * its bytes is copied; ev->sample_level gets the level it was decided under and *epoch the
 * sampling epoch in force (ws_shed_cfg.epoch; 0 without a config). *peer: the key of the
 * decision left for the other end (0 when this end took the other's, or none was needed). */
static __always_inline __u8 decide(struct ws_conn_event *ev, __u32 tgid, __u64 *peer, __u32 *epoch)
{
	struct ws_shed_cfg *cfg = get_shed_cfg();
	ev->sample_level = WS_SAMPLE_ONE;
	*peer = 0;
	*epoch = 0;
	if (!cfg)
		return WS_SHED_NONE;
	*epoch = cfg->epoch;
	__u64 tk = peer_key_of(ev);
	__u64 now = bpf_ktime_get_ns();
	struct peer_decision *pd = bpf_map_lookup_elem(&peer_decision, &tk);
	if (pd && now - pd->ts_ns < 5000000000ULL) {
		/* the other end of this connection was decided first: a call is seen at both or neither */
		__u8 shed = pd->shed;
		ev->sample_level = pd->level;
		/* and its epoch: taken from a request decided just before a new epoch began, this end
		 * would otherwise count itself in the new one, and decide alone at its next request
		 * while the other end decides again and leaves its decision for it: from then on the
		 * two ends would take each other's decisions one epoch late (a call seen at one end) */
		*epoch = pd->epoch;
		bpf_map_delete_elem(&peer_decision, &tk);
		return shed;
	}
	__u32 level = cfg->sample_level > WS_SAMPLE_ONE ? WS_SAMPLE_ONE : cfg->sample_level;
	__u8 shed = WS_SHED_NONE;
	struct proc_state *ps = proc_of(tgid);
	if (cfg->ringbuf_pct &&
	    bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) * 100 > bpf_ringbuf_query(&events, BPF_RB_RING_SIZE) * cfg->ringbuf_pct) {
		shed = WS_SHED_RINGBUF;
	} else if (ps && cfg->proc_bytes && now - ps->win_start < cfg->interval_ns && ps->win_bytes > cfg->proc_bytes) {
		shed = WS_SHED_PROC_FLOOD;
	} else if (level < WS_SAMPLE_ONE) {
		if (ps) {
			/* a new epoch (steered sampling) starts the accumulator at a random phase, so that
			 * what an epoch observes is n x level in expectation whatever the epochs before it
			 * observed: with the phase carried over, an epoch after one that observed a
			 * connection (and had its level cut by the steering for it) observes less than
			 * its share, and the scaled counts came out low. Within the epoch it stays
			 * systematic: n x level +- 1. Epoch 0 (a fixed fraction) keeps the phase. */
			if (ps->epoch != cfg->epoch) {
				ps->epoch = cfg->epoch;
				ps->acc = bpf_get_prandom_u32() % WS_SAMPLE_ONE;
			}
			__u32 acc = ps->acc + level;
			if (acc >= WS_SAMPLE_ONE)
				acc -= WS_SAMPLE_ONE;
			else
				shed = WS_SHED_BUDGET;
			ps->acc = acc;
		} else if (((ev->hdr.conn_key * 0x9E3779B97F4A7C15ULL) >> 49) >= level) {
			shed = WS_SHED_BUDGET; /* no process state (table full): a hash of the key decides */
		}
	}
	ev->sample_level = level;
	struct peer_decision d = { .ts_ns = now, .level = level, .shed = shed, .epoch = cfg->epoch };
	if (!bpf_map_update_elem(&peer_decision, &tk, &d, BPF_ANY))
		*peer = tk;
	return shed;
}

/* Emits an open event for a socket and records it as the fd's connection (replacing any older). */
static __always_inline struct conn_info *track_conn(__u32 tgid, __u32 fd, struct sock *sk, __u8 role,
						    __u8 flags, __u8 syscall)
{
	struct ws_fd_key key = { .tgid = tgid, .fd = fd };
	struct ws_conn_event ev = {};
	__u64 ck = conn_key_base | (__sync_fetch_and_add(&next_conn_seq, 1) + 1);
	fill_hdr(&ev.hdr, WS_EV_OPEN, ck);
	read_addrs(sk, &ev);
	if (role == WS_ROLE_UNKNOWN) {
		/* predates the probe: the side whose local port is listening is the server */
		__u8 *l = bpf_map_lookup_elem(&listen_ports, &ev.lport);
		role = l ? WS_ROLE_SERVER : WS_ROLE_CLIENT;
		if (!l && !bpf_map_lookup_elem(&listen_ports, &ev.rport))
			role = WS_ROLE_UNKNOWN;
	}
	ev.role = role;
	ev.flags = flags;
	ev.fd = fd;
	ev.syscall = syscall;
	ev.cgroup_id = bpf_get_current_cgroup_id();

	struct conn_info ci = {};
	ci.conn_key = ck;
	ci.lport = ev.lport;
	ci.rport = ev.rport;
	ci.role = role;
	ci.flags = flags;
	int traced = ports_traced(ev.lport, ev.rport);
	/* only connections the filters let through take part in sampling (others are never sent) */
	/* (an untraced connection keeps epoch 0: user space never vouches for its turns, so it is
	 * never decided again) */
	ci.shed = traced ? decide(&ev, tgid, &ci.peer, &ci.epoch) : WS_SHED_NONE;
	ci.sample_level = ev.sample_level;
	bpf_map_delete_elem(&nonsock_fds, &key);
	if (bpf_map_update_elem(&conn_by_fd, &key, &ci, BPF_ANY)) {
		count_drop(WS_DROP_CONN_MAP_FULL);
		return NULL;
	}
	note_fd_entry(tgid);
	if (ci.shed) {
		/* shed at first sight: user space never hears of it, nothing of it is copied */
		shed_count(ci.shed, 1);
		return bpf_map_lookup_elem(&conn_by_fd, &key);
	}
	leader_comm(ev.comm);
	if (!traced)
		return bpf_map_lookup_elem(&conn_by_fd, &key);
	/* the first open of a process wakes the consumer at once: it reads /proc/<pid> for this
	 * process while it still exists (a short-lived client). Its later opens travel with the data
	 * (rb_flags): a wake-up and a batch to JS per connection were most of the probe's cost per
	 * connection at hundreds of new connections a second. */
	struct proc_state *ps = bpf_map_lookup_elem(&proc_state, &tgid);
	int first = !ps || !ps->announced;
	if (first)
		ev.flags |= WS_CONN_F_NEW_PROC;
	if (bpf_ringbuf_output(&events, &ev, sizeof(ev), first ? BPF_RB_FORCE_WAKEUP : rb_flags()))
		count_drop(WS_DROP_RINGBUF_FULL);
	else if (first && ps)
		ps->announced = 1;
	return bpf_map_lookup_elem(&conn_by_fd, &key);
}

/* The connection an fd belongs to; starts tracking sockets that predate the probe. */
static __always_inline struct conn_info *conn_of_fd(__u32 tgid, __u32 fd)
{
	struct ws_fd_key key = { .tgid = tgid, .fd = fd };
	struct conn_info *ci = bpf_map_lookup_elem(&conn_by_fd, &key);
	if (ci)
		return ci;
	if (bpf_map_lookup_elem(&nonsock_fds, &key))
		return NULL;
	struct sock *sk = tcp_sock_of_fd(fd);
	if (!sk) {
		__u8 one = 1;
		if (!bpf_map_update_elem(&nonsock_fds, &key, &one, BPF_ANY))
			note_fd_entry(tgid);
		return NULL;
	}
	return track_conn(tgid, fd, sk, WS_ROLE_UNKNOWN, WS_CONN_F_INFERRED, 0);
}

/* A close event for a tracked connection (fields from conn_info; addresses are not needed). */
static __always_inline void close_event(struct ws_conn_event *ev, struct conn_info *ci, __u32 fd, __u8 syscall)
{
	fill_hdr(&ev->hdr, WS_EV_CLOSE, ci->conn_key);
	ev->lport = ci->lport;
	ev->rport = ci->rport;
	ev->role = ci->role;
	ev->flags = ci->flags;
	ev->tls_lib = ci->tls_lib;
	ev->fd = fd;
	ev->syscall = syscall;
	ev->sent_bytes = ci->seq[0];
	ev->recv_bytes = ci->seq[1];
	ev->cgroup_id = bpf_get_current_cgroup_id();
	leader_comm(ev->comm);
}

/*
 * Fairness, before a call's bytes are copied: charges `copy` bytes and one call to the
 * connection's and its process's windows. Returns 1 when the bytes are to be copied, 0 when the
 * connection is shed (already, or now: then user space gets a close with WS_CONN_F_SHED, and the
 * connection stays shed for the rest of its life). `total` is what the call moved (counted as not
 * copied when shed).
 */
static __always_inline int charge(struct conn_info *ci, __u32 tgid, __u32 fd, __u64 copy, __u64 total)
{
	if (ci->shed) {
		shed_count(WS_SHED_MAX + (ci->shed & 7), total);
		return 0;
	}
	struct ws_shed_cfg *cfg = get_shed_cfg();
	if (!cfg)
		return 1;
	__u64 now = bpf_ktime_get_ns();
	if (now - ci->win_start >= cfg->interval_ns) {
		ci->win_start = now;
		ci->win_bytes = 0;
		ci->win_calls = 0;
	}
	/* over budget = the window was full before this call: one big call alone is still copied */
	__u8 shed = WS_SHED_NONE;
	if ((cfg->conn_bytes && ci->win_bytes >= cfg->conn_bytes) || (cfg->conn_calls && ci->win_calls >= cfg->conn_calls))
		shed = WS_SHED_CONN_FLOOD;
	ci->win_bytes += copy;
	ci->win_calls += 1;
	struct proc_state *ps = bpf_map_lookup_elem(&proc_state, &tgid);
	if (ps) {
		if (now - ps->win_start >= cfg->interval_ns) {
			ps->win_start = now;
			ps->win_bytes = 0;
		}
		if (!shed && cfg->proc_bytes && ps->win_bytes >= 2 * cfg->proc_bytes)
			shed = WS_SHED_PROC_FLOOD;
		else
			ps->win_bytes += copy;
	}
	if (!shed)
		return 1;
	ci->shed = shed;
	shed_count(shed, 1);
	shed_count(WS_SHED_MAX + shed, total);
	struct scratch *sc = get_scratch();
	if (!sc)
		return 0;
	/* the data event's scratch is free here (nothing is being copied): build the close in it */
	struct ws_conn_event *ev = (struct ws_conn_event *)&sc->ev;
	__builtin_memset(ev, 0, sizeof(*ev));
	close_event(ev, ci, fd, 0);
	ev->flags |= WS_CONN_F_SHED;
	ev->shed = shed;
	if (bpf_ringbuf_output(&events, ev, sizeof(*ev), BPF_RB_FORCE_WAKEUP))
		count_drop(WS_DROP_RINGBUF_FULL);
	return 0;
}

/*
 * Re-decision at a clean boundary. A connection whose turns are clean (request, then response,
 * no pipelining: an HTTP/1.1 connection user space follows) and that was decided under another
 * level than the one in force now, or in another epoch, is decided again when a new request
 * starts: on the server's side a read after a write, on the client's a write after a read. So a
 * change of level reaches long-lived keep-alive connections too, never inside a request.
 * Epochs: while the level is steered, user space advances ws_shed_cfg.epoch every tick, so each
 * such connection is decided again every tick, at an unchanged level too. Deciding again only at a
 * change of level biased the scaled counts low (by 15-79 % at saturation): the steering changes
 * the level sooner after a decision that observed a connection (its CPU) than after one that
 * shed it, so observed stretches were shorter than shed ones, which the fraction does not undo.
 * A stretch of one tick each makes every decision stand for the same time (and decide() starts
 * each epoch's draw at a random phase).
 *   observed -> observed: nothing to tell when the level is the same (the stream goes on);
 *   observed -> shed:     a close with WS_CONN_F_SHED (budget);
 *   -> observed:          an open of the same conn_key with the new level, its seq from 0 again
 *                         (a new byte stream that starts with a request, as after a TLS open).
 * The same while the ring buffer is fuller than ringbuf_pct: observed -> shed (ringbuf_pressure),
 * and decided again at a boundary once it has room.
 * Connections shed for a flood stay shed.
 */
static __always_inline void redecide_at_boundary(struct conn_info *ci, __u32 tgid, __u32 fd)
{
	if (ci->shed == WS_SHED_CONN_FLOOD || ci->shed == WS_SHED_PROC_FLOOD)
		return;
	struct ws_shed_cfg *cfg = get_shed_cfg();
	__u32 level = cfg ? (cfg->sample_level > WS_SAMPLE_ONE ? WS_SAMPLE_ONE : cfg->sample_level) : WS_SAMPLE_ONE;
	/* a filling ring sheds observed connections at their boundary too (their bytes would otherwise
	 * be lost at random once it is full); shed for it, they are decided again once it has room */
	int pressed = cfg && cfg->ringbuf_pct &&
		      bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) * 100 > bpf_ringbuf_query(&events, BPF_RB_RING_SIZE) * cfg->ringbuf_pct;
	__u32 epoch = cfg ? cfg->epoch : 0;
	if (level == ci->sample_level && epoch == ci->epoch && !(pressed && !ci->shed) && !(!pressed && ci->shed == WS_SHED_RINGBUF))
		return;
	struct sock *sk = tcp_sock_of_fd(fd);
	struct scratch *sc = get_scratch();
	if (!sk || !sc)
		return;
	struct ws_conn_event *ev = (struct ws_conn_event *)&sc->ev;
	__builtin_memset(ev, 0, sizeof(*ev));
	fill_hdr(&ev->hdr, WS_EV_OPEN, ci->conn_key);
	read_addrs(sk, ev);
	__u64 peer = 0;
	__u8 shed = decide(ev, tgid, &peer, &ci->epoch);
	if (peer)
		ci->peer = peer;
	__u8 was = ci->shed;
	if (!shed && !was && ev->sample_level == ci->sample_level)
		return; /* observed under the same level still (the ring had room again): nothing to tell */
	ci->sample_level = ev->sample_level;
	ci->shed = shed;
	if (shed) {
		if (was)
			return; /* shed already: still shed, not counted again */
		shed_count(shed, 1);
		close_event(ev, ci, fd, 0);
		ev->flags |= WS_CONN_F_SHED;
		ev->shed = shed;
	} else {
		ci->seq[0] = 0;
		ci->seq[1] = 0;
		ci->stream++;
		ev->role = ci->role;
		ev->flags = ci->flags | WS_CONN_F_REOPEN;
		ev->tls_lib = ci->tls_lib;
		ev->fd = fd;
		ev->cgroup_id = bpf_get_current_cgroup_id();
		leader_comm(ev->comm);
	}
	if (bpf_ringbuf_output(&events, ev, sizeof(*ev), BPF_RB_FORCE_WAKEUP))
		count_drop(WS_DROP_RINGBUF_FULL);
}

/*
 * Called for every data call before its bytes are charged, at the turns of a conversation: a
 * call in the request direction after one in the other starts a request (on the server's side a
 * read after a write, on the client's a write after a read), and one in the response direction
 * after one in the other starts its answer. A connection whose turns user space vouched for is
 * decided again where a request starts (above). An answer that starts while the connection is
 * shed is counted, by end and reason (WS_SHED_STATS): a request served (server end) or answered
 * (client end) that the probe chose not to see. For protocols that answer each request before
 * the next (HTTP/1.1 without pipelining, MySQL, PostgreSQL's simple queries, Redis without
 * pipelining) that is exact, so served = observed + shed can be checked; a request never answered
 * (a half-open connection, bytes poured into a sink) is not counted.
 * Returns WS_DATA_F_ANSWER when the call starts an answer at a server end, for its first data
 * event: an observed request served, which user space counts per partition (RawBatch.served), so
 * that a parser missing batches knows how many requests they held.
 */
static __always_inline __u8 redecide(struct conn_info *ci, __u32 tgid, __u32 fd, __u8 dir)
{
	__u8 last = ci->last_dir;
	ci->last_dir = dir;
	if (last == dir)
		return 0;
	int server = ci->role == WS_ROLE_SERVER;
	if (!server && ci->role != WS_ROLE_CLIENT)
		return 0;
	if (server == (dir == WS_DIR_INGRESS)) {
		if (ci->turns && last)
			redecide_at_boundary(ci, tgid, fd);
		return 0;
	}
	if (ci->shed) {
		shed_count((server ? 2 : 3) * WS_SHED_MAX + (ci->shed & 7), 1);
		shed_served_count(tgid, server ? ci->lport : 0);
	}
	return server ? WS_DATA_F_ANSWER : 0;
}

/* ---- data path ---- */

struct iovec_user {
	__u64 base;
	__u64 len;
};

/* bpf_loop callback context: just the scratch pointer. */
struct copy_ctx {
	struct scratch *sc;
};

/* Sends the event gathered so far: `fill` payload bytes standing for `orig` bytes of the stream. */
static __always_inline void emit_gathered(struct copy_state *c, struct ws_data_event *ev, __u64 orig)
{
	__u32 len = c->fill;
	ev->seq = c->seq;
	ev->original_length = orig;
	ev->len = len;
	c->seq += orig;
	c->fill = 0;
	ev->hdr.ts_ns = bpf_ktime_get_ns();
	__u64 size = sizeof(*ev) - WS_MAX_CHUNK + (len ? ((len - 1) & (WS_MAX_CHUNK - 1)) + 1 : 0);
	if (bpf_ringbuf_output(&events, ev, size, rb_flags()))
		count_drop(WS_DROP_RINGBUF_FULL);
	ev->flags = 0; /* the call's first event only */
}

/*
 * One step of a syscall's copy: move to the next iovec, or copy the next piece of the current
 * segment into the event being gathered. An event is sent when it holds `cap` bytes or the call's
 * bytes are done, so a writev of head + body + trailer (node:http's chunked response) is one event,
 * not one per segment: every byte of a call gets the same moment anyway (the call's exit).
 */
static long copy_step(__u32 i, void *arg)
{
	struct scratch *sc = ((struct copy_ctx *)arg)->sc;
	struct copy_state *c = &sc->st;
	struct ws_data_event *ev = &sc->ev;
	if (c->to_copy == 0)
		return 1;
	if (c->cur_off >= c->cur_len) {
		/* next iovec; one per step keeps each bpf_loop iteration small */
		if (!c->iov || c->iov_idx >= c->iovcnt)
			return 1;
		struct iovec_user v = {};
		int failed = 0;
		if (c->iov_idx >= WS_MAX_IOV) {
			count_drop(WS_DROP_IOV_LIMIT);
			failed = 1;
		} else if (bpf_probe_read_user(&v, sizeof(v), (void *)(c->iov + (__u64)c->iov_idx * sizeof(v)))) {
			count_drop(WS_DROP_READ_USER);
			failed = 1;
		}
		if (!failed) {
			c->iov_idx++;
			c->cur_base = v.base;
			c->cur_len = v.len;
			c->cur_off = 0;
			return 0;
		}
		/* cannot follow the iovecs further: the rest is a stated gap after what was gathered */
		c->lost_iov = 1;
		c->uncopied += c->to_copy;
		c->to_copy = 0;
		emit_gathered(c, ev, c->fill + c->uncopied);
		return 1;
	}
	if (c->skip) {
		/* the middle of a call under a copy policy: stated already, not copied */
		__u64 k = c->cur_len - c->cur_off;
		if (k > c->skip)
			k = c->skip;
		c->cur_off += k;
		c->skip -= k;
		return 0;
	}
	__u32 fill = c->fill & (WS_MAX_CHUNK - 1);
	__u64 n = c->cur_len - c->cur_off;
	if (n > c->to_copy)
		n = c->to_copy;
	if (n > c->cap - fill)
		n = c->cap - fill;
	/* fill < WS_MAX_CHUNK and 1 <= n <= WS_MAX_CHUNK: payload + fill + n stays inside the scratch
	 * value (spill); the mask forms are what the verifier can follow */
	int failed = n && bpf_probe_read_user(ev->payload + fill, ((n - 1) & (WS_MAX_CHUNK - 1)) + 1,
					      (void *)(c->cur_base + c->cur_off));
	c->cur_off += n;
	c->to_copy -= n;
	__u64 tail = c->to_copy == 0 ? c->uncopied : 0; /* the part not copied is stated on the last event */
	if (failed) {
		/* unreadable bytes end the event as a stated gap */
		count_drop(WS_DROP_READ_USER);
		emit_gathered(c, ev, (__u64)fill + n + tail);
	} else {
		c->fill = fill + n;
		if (c->fill >= c->cap || c->to_copy == 0)
			emit_gathered(c, ev, c->fill + tail);
	}
	return c->to_copy == 0;
}

/* Emits a syscall's bytes as data events. `iov` = 0: `buf` is a plain buffer of `total` bytes. */
static __always_inline void emit_data(struct conn_info *ci, __u32 fd, __u8 dir, __u8 syscall, __u64 buf,
				      __u64 iov, __u32 iovcnt, __u64 total)
{
	if (!ports_traced(ci->lport, ci->rport)) {
		/* still advance seq so a later filter change shows a gap, not a lie */
		__sync_fetch_and_add(&ci->seq[dir == WS_DIR_EGRESS ? 0 : 1], total);
		return;
	}
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct ws_copy_policy *pol = bpf_map_lookup_elem(&copy_policy, &ci->conn_key);
	if (pol)
		ci->turns = 1;
	__u8 flags = redecide(ci, tgid, fd, dir);
	__u8 d = dir == WS_DIR_EGRESS ? 0 : 1;
	__u64 seq = __sync_fetch_and_add(&ci->seq[d], total);
	/* what this call would copy: the per-call limit, less its first bytes when they lie in a body
	 * user space declared (a copy policy): those are stated as a gap, the rest of the call copied */
	__u64 copy = total > max_bytes_per_call ? max_bytes_per_call : total;
	__u64 body = 0;
	if (pol && pol->stream == ci->stream) {
		__u64 end = d ? pol->body_end[1] : pol->body_end[0];
		if (seq < end) {
			body = end - seq < total ? end - seq : total;
			if (total - body > max_bytes_per_call)
				body = 0; /* the rest too long to copy whole (never expected): no cut */
			else
				copy = total - body;
		}
	}
	if (!charge(ci, tgid, fd, copy, total))
		return;
	struct scratch *sc = get_scratch();
	if (!sc) {
		count_drop(WS_DROP_NO_SCRATCH);
		return;
	}
	struct ws_data_event *ev = &sc->ev;
	struct copy_state *c = &sc->st;
	fill_hdr(&ev->hdr, WS_EV_DATA, ci->conn_key);
	ev->direction = dir;
	ev->syscall = syscall;
	ev->flags = flags;
	ev->stream = ci->stream;
	ev->fd = fd;

	c->iov = iov;
	c->iovcnt = iovcnt;
	c->iov_idx = 0;
	c->seq = seq;
	c->cap = chunk_bytes > WS_MAX_CHUNK || chunk_bytes == 0 ? WS_MAX_CHUNK : chunk_bytes;
	c->fill = 0;
	c->to_copy = total > max_bytes_per_call ? max_bytes_per_call : total;
	c->uncopied = total - c->to_copy;
	c->skip = 0;
	c->lost_iov = 0;
	/* a declared body first: stated as a gap (an event of its own), the rest of the call copied
	 * in the second pass below */
	__u64 tail = 0;
	if (body) {
		tail = total - body;
		c->to_copy = 0;
		c->uncopied = body;
	}
	c->cur_base = iov ? 0 : buf;
	c->cur_len = iov ? 0 : total;
	c->cur_off = 0;
	if (body) {
		emit_gathered(c, ev, body);
		if (!tail)
			return;
	} else if (c->to_copy == 0) {
		/* nothing copied at all (a zero limit): one event states the gap */
		ev->seq = seq;
		ev->original_length = total;
		ev->len = 0;
		if (bpf_ringbuf_output(&events, ev, sizeof(*ev) - WS_MAX_CHUNK, rb_flags()))
			count_drop(WS_DROP_RINGBUF_FULL);
		return;
	}
	struct copy_ctx cc = { .sc = sc };
	__u32 steps;
	if (!body) {
		/* each step copies one piece (up to the end of a segment or of a chunk) or moves to the next iovec */
		steps = (c->to_copy / c->cap) + 2 + (iov ? 2 * (iovcnt > WS_MAX_IOV ? WS_MAX_IOV : iovcnt) : 0);
		bpf_loop(steps, copy_step, &cc, 0);
		/* iovecs shorter than the call said (never expected): what was gathered still goes out */
		if (c->fill)
			emit_gathered(c, ev, c->fill);
		return;
	}
	/* second pass: pass over the declared body (stated above), copy the rest of the call */
	c->skip = c->uncopied;
	c->uncopied = 0;
	c->to_copy = tail;
	steps = (tail / c->cap) + 2 + (iov ? 2 * (iovcnt > WS_MAX_IOV ? WS_MAX_IOV : iovcnt) : 0);
	bpf_loop(steps, copy_step, &cc, 0);
	if (c->fill)
		emit_gathered(c, ev, c->fill);
}

#include "tls.bpf.h"
#include "tls-go.bpf.h"

static __always_inline int save_args(__u32 fd, __u64 buf, __u32 iovcnt, __u8 syscall)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (!process_traced(id >> 32))
		return 0;
	struct call_args a = { .buf = buf, .fd = fd, .iovcnt = iovcnt, .syscall = syscall };
	if (bpf_map_update_elem(&active_calls, &id, &a, BPF_ANY))
		count_drop(WS_DROP_ARGS_MAP_FULL);
	return 0;
}

/* Common exit for calls that moved `ret` bytes through a socket. */
static __always_inline int data_exit(long ret, __u8 dir)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct call_args *a = bpf_map_lookup_elem(&active_calls, &id);
	if (!a)
		return 0;
	struct call_args args = *a;
	bpf_map_delete_elem(&active_calls, &id);
	if (ret <= 0)
		return 0;
	struct conn_info *ci = conn_of_fd(id >> 32, args.fd);
	if (!ci)
		return 0;
	if (tls_socket_bytes(ci, id, args.fd, ret, dir, &args))
		return 0; /* ciphertext of a connection whose plaintext the TLS uprobes give */
	__u64 buf = args.buf, iov = 0;
	__u32 iovcnt = 0;
	switch (args.syscall) {
	case WS_SYS_READV:
	case WS_SYS_WRITEV:
		iov = args.buf;
		iovcnt = args.iovcnt;
		break;
	case WS_SYS_RECVMSG:
	case WS_SYS_SENDMSG: {
		struct user_msghdr m = {};
		if (bpf_probe_read_user(&m, sizeof(m), (void *)args.buf)) {
			count_drop(WS_DROP_READ_USER);
			buf = 0;
			iov = 0;
			break;
		}
		iov = (__u64)m.msg_iov;
		iovcnt = m.msg_iovlen;
		break;
	}
	case WS_SYS_SENDFILE:
		buf = 0;
		break;
	default:
		break;
	}
	if (args.syscall == WS_SYS_SENDFILE || (!buf && !iov)) {
		/* no copyable user memory: a stated gap of the right size */
		struct scratch *sc = get_scratch();
		if (!sc)
			return 0;
		struct ws_data_event *ev = &sc->ev;
		__u64 *next = &ci->seq[dir == WS_DIR_EGRESS ? 0 : 1];
		if (!ports_traced(ci->lport, ci->rport)) {
			__sync_fetch_and_add(next, ret);
			return 0;
		}
		/* a turn of the conversation as any other call: an answer sent with sendfile alone
		 * (headers and body in the file) is served, and its next request decided again */
		__u8 flags = redecide(ci, id >> 32, args.fd, dir);
		__u64 seq = __sync_fetch_and_add(next, ret);
		if (!charge(ci, id >> 32, args.fd, 0, ret))
			return 0;
		fill_hdr(&ev->hdr, WS_EV_DATA, ci->conn_key);
		ev->direction = dir;
		ev->syscall = args.syscall;
		ev->flags = flags;
		ev->stream = ci->stream;
		ev->fd = args.fd;
		ev->seq = seq;
		ev->original_length = ret;
		ev->len = 0;
		if (bpf_ringbuf_output(&events, ev, sizeof(*ev) - WS_MAX_CHUNK, rb_flags()))
			count_drop(WS_DROP_RINGBUF_FULL);
		return 0;
	}
	emit_data(ci, args.fd, dir, args.syscall, buf, iov, iovcnt, ret);
	return 0;
}

#define ARG(ctx, n) ((ctx)->args[n])

SEC("tracepoint/syscalls/sys_enter_read")
int enter_read(struct trace_event_raw_sys_enter *ctx) { return save_args(ARG(ctx, 0), ARG(ctx, 1), 0, WS_SYS_READ); }
SEC("tracepoint/syscalls/sys_exit_read")
int exit_read(struct trace_event_raw_sys_exit *ctx) { return data_exit(ctx->ret, WS_DIR_INGRESS); }

SEC("tracepoint/syscalls/sys_enter_write")
int enter_write(struct trace_event_raw_sys_enter *ctx) { return save_args(ARG(ctx, 0), ARG(ctx, 1), 0, WS_SYS_WRITE); }
SEC("tracepoint/syscalls/sys_exit_write")
int exit_write(struct trace_event_raw_sys_exit *ctx) { return data_exit(ctx->ret, WS_DIR_EGRESS); }

SEC("tracepoint/syscalls/sys_enter_readv")
int enter_readv(struct trace_event_raw_sys_enter *ctx) { return save_args(ARG(ctx, 0), ARG(ctx, 1), ARG(ctx, 2), WS_SYS_READV); }
SEC("tracepoint/syscalls/sys_exit_readv")
int exit_readv(struct trace_event_raw_sys_exit *ctx) { return data_exit(ctx->ret, WS_DIR_INGRESS); }

SEC("tracepoint/syscalls/sys_enter_writev")
int enter_writev(struct trace_event_raw_sys_enter *ctx) { return save_args(ARG(ctx, 0), ARG(ctx, 1), ARG(ctx, 2), WS_SYS_WRITEV); }
SEC("tracepoint/syscalls/sys_exit_writev")
int exit_writev(struct trace_event_raw_sys_exit *ctx) { return data_exit(ctx->ret, WS_DIR_EGRESS); }

SEC("tracepoint/syscalls/sys_enter_recvfrom")
int enter_recvfrom(struct trace_event_raw_sys_enter *ctx) { return save_args(ARG(ctx, 0), ARG(ctx, 1), 0, WS_SYS_RECVFROM); }
SEC("tracepoint/syscalls/sys_exit_recvfrom")
int exit_recvfrom(struct trace_event_raw_sys_exit *ctx) { return data_exit(ctx->ret, WS_DIR_INGRESS); }

SEC("tracepoint/syscalls/sys_enter_sendto")
int enter_sendto(struct trace_event_raw_sys_enter *ctx) { return save_args(ARG(ctx, 0), ARG(ctx, 1), 0, WS_SYS_SENDTO); }
SEC("tracepoint/syscalls/sys_exit_sendto")
int exit_sendto(struct trace_event_raw_sys_exit *ctx) { return data_exit(ctx->ret, WS_DIR_EGRESS); }

SEC("tracepoint/syscalls/sys_enter_recvmsg")
int enter_recvmsg(struct trace_event_raw_sys_enter *ctx) { return save_args(ARG(ctx, 0), ARG(ctx, 1), 0, WS_SYS_RECVMSG); }
SEC("tracepoint/syscalls/sys_exit_recvmsg")
int exit_recvmsg(struct trace_event_raw_sys_exit *ctx) { return data_exit(ctx->ret, WS_DIR_INGRESS); }

SEC("tracepoint/syscalls/sys_enter_sendmsg")
int enter_sendmsg(struct trace_event_raw_sys_enter *ctx) { return save_args(ARG(ctx, 0), ARG(ctx, 1), 0, WS_SYS_SENDMSG); }
SEC("tracepoint/syscalls/sys_exit_sendmsg")
int exit_sendmsg(struct trace_event_raw_sys_exit *ctx) { return data_exit(ctx->ret, WS_DIR_EGRESS); }

/* sendfile(out_fd, in_fd, ...): bytes leave through out_fd but come from a file: a sized gap. */
SEC("tracepoint/syscalls/sys_enter_sendfile64")
int enter_sendfile(struct trace_event_raw_sys_enter *ctx) { return save_args(ARG(ctx, 0), 0, 0, WS_SYS_SENDFILE); }
SEC("tracepoint/syscalls/sys_exit_sendfile64")
int exit_sendfile(struct trace_event_raw_sys_exit *ctx) { return data_exit(ctx->ret, WS_DIR_EGRESS); }

/* ---- connection lifecycle ---- */

SEC("tracepoint/syscalls/sys_enter_connect")
int enter_connect(struct trace_event_raw_sys_enter *ctx) { return save_args(ARG(ctx, 0), 0, 0, WS_SYS_CONNECT); }

SEC("tracepoint/syscalls/sys_exit_connect")
int exit_connect(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct call_args *a = bpf_map_lookup_elem(&active_calls, &id);
	if (!a)
		return 0;
	__u32 fd = a->fd;
	bpf_map_delete_elem(&active_calls, &id);
	if (ctx->ret != 0 && ctx->ret != -EINPROGRESS)
		return 0;
	struct sock *sk = tcp_sock_of_fd(fd);
	if (!sk)
		return 0;
	track_conn(id >> 32, fd, sk, WS_ROLE_CLIENT, 0, WS_SYS_CONNECT);
	return 0;
}

static __always_inline int accept_exit(long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct call_args *a = bpf_map_lookup_elem(&active_calls, &id);
	if (!a)
		return 0;
	bpf_map_delete_elem(&active_calls, &id);
	if (ret < 0)
		return 0;
	struct sock *sk = tcp_sock_of_fd(ret);
	if (!sk)
		return 0;
	track_conn(id >> 32, ret, sk, WS_ROLE_SERVER, 0, WS_SYS_ACCEPT);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_accept")
int enter_accept(struct trace_event_raw_sys_enter *ctx) { return save_args(ARG(ctx, 0), 0, 0, WS_SYS_ACCEPT); }
SEC("tracepoint/syscalls/sys_exit_accept")
int exit_accept(struct trace_event_raw_sys_exit *ctx) { return accept_exit(ctx->ret); }
SEC("tracepoint/syscalls/sys_enter_accept4")
int enter_accept4(struct trace_event_raw_sys_enter *ctx) { return save_args(ARG(ctx, 0), 0, 0, WS_SYS_ACCEPT); }
SEC("tracepoint/syscalls/sys_exit_accept4")
int exit_accept4(struct trace_event_raw_sys_exit *ctx) { return accept_exit(ctx->ret); }

SEC("tracepoint/syscalls/sys_enter_close")
int enter_close(struct trace_event_raw_sys_enter *ctx)
{
	/* close is not filtered: a filter change must not leave stale fd state behind */
	__u64 id = bpf_get_current_pid_tgid();
	if ((id >> 32) == self_tgid)
		return 0;
	struct call_args a = { .fd = ARG(ctx, 0), .syscall = WS_SYS_CLOSE };
	if (bpf_map_update_elem(&active_calls, &id, &a, BPF_ANY))
		count_drop(WS_DROP_ARGS_MAP_FULL);
	return 0;
}

/* The fd no longer names what we knew: emit a close for its connection and forget both caches. */
static __always_inline void forget_fd(__u32 tgid, __u32 fd, __u8 syscall)
{
	struct ws_fd_key key = { .tgid = tgid, .fd = fd };
	bpf_map_delete_elem(&nonsock_fds, &key);
	struct conn_info *ci = bpf_map_lookup_elem(&conn_by_fd, &key);
	if (!ci)
		return;
	struct ws_conn_event ev = {};
	close_event(&ev, ci, fd, syscall);
	/* a shed connection's end was told already (or it was never announced) */
	int traced = !ci->shed && process_traced(tgid) && ports_traced(ci->lport, ci->rport);
	bpf_map_delete_elem(&copy_policy, &ci->conn_key);
	/* a decision left for an other end that never came (not on this node, or filtered out) */
	if (ci->peer)
		bpf_map_delete_elem(&peer_decision, &ci->peer);
	/* the TLS object's link to this fd, unless it moved to another fd since (SSL_free may never
	 * come: a process killed, or one that exits without freeing) */
	if (ci->ssl)
		forget_ssl_link(tgid, ci->ssl, fd);
	if (ci->go_g)
		go_forget_read(tgid, ci);
	bpf_map_delete_elem(&conn_by_fd, &key);
	if (traced && bpf_ringbuf_output(&events, &ev, sizeof(ev), rb_flags()))
		count_drop(WS_DROP_RINGBUF_FULL);
}

SEC("tracepoint/syscalls/sys_exit_close")
int exit_close(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct call_args *a = bpf_map_lookup_elem(&active_calls, &id);
	if (!a)
		return 0;
	__u32 fd = a->fd;
	bpf_map_delete_elem(&active_calls, &id);
	if (ctx->ret == 0)
		forget_fd(id >> 32, fd, WS_SYS_CLOSE);
	return 0;
}

/* dup2/dup3 onto an open fd close it implicitly (inetd-style servers put sockets on 0/1/2): the
 * target fd's cached identity must go, or a socket there would be skipped as a pipe. */
static __always_inline int dup_enter(__u32 newfd)
{
	__u64 id = bpf_get_current_pid_tgid();
	if ((id >> 32) == self_tgid)
		return 0;
	struct call_args a = { .fd = newfd, .syscall = WS_SYS_DUP };
	if (bpf_map_update_elem(&active_calls, &id, &a, BPF_ANY))
		count_drop(WS_DROP_ARGS_MAP_FULL);
	return 0;
}

static __always_inline int dup_exit(long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct call_args *a = bpf_map_lookup_elem(&active_calls, &id);
	if (!a)
		return 0;
	__u32 fd = a->fd;
	bpf_map_delete_elem(&active_calls, &id);
	if (ret >= 0 && (__u32)ret == fd)
		forget_fd(id >> 32, fd, WS_SYS_DUP);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_dup2")
int enter_dup2(struct trace_event_raw_sys_enter *ctx) { return dup_enter(ARG(ctx, 1)); }
SEC("tracepoint/syscalls/sys_exit_dup2")
int exit_dup2(struct trace_event_raw_sys_exit *ctx) { return dup_exit(ctx->ret); }
SEC("tracepoint/syscalls/sys_enter_dup3")
int enter_dup3(struct trace_event_raw_sys_enter *ctx) { return dup_enter(ARG(ctx, 1)); }
SEC("tracepoint/syscalls/sys_exit_dup3")
int exit_dup3(struct trace_event_raw_sys_exit *ctx) { return dup_exit(ctx->ret); }

/* ---- process lifecycle: what a process leaves behind without close(2) ----
 *
 * A process that exits (or is killed) has its fds closed by the kernel, with no close(2) to
 * trace; exec closes its close-on-exec fds the same way, and close_range(2) many at once. Their
 * entries in conn_by_fd, nonsock_fds (and through conn_info: copy_policy, peer_decision, ssl_fds,
 * go_calls) would stay until the LRU evicted them, and an LRU full of dead entries evicts live ones. So:
 *
 *   sched_process_exit, each thread  ── its active_calls and ssl_calls entries
 *   ... the last thread of the group ── every open fd (the table's open_fds bitmap): forget_fd (a
 *                                       close event, WS_SYS_EXIT, for a connection), proc_state[tgid]
 *   sched_process_exec               ── the fds that no longer hold a file (close-on-exec), when
 *                                       the process has had fd entries (proc_state.fd_entries);
 *                                       then WS_EV_PROC_EXEC when user space knows the process
 *   sys_exit_close_range             ── the fds of the range that no longer hold a file
 *
 * At sched_process_exit the fd table is still there (exit_files comes after it). The exit walk
 * reads the bitmap a word (64 fds) at a time and forgets the fds whose bit is set: its cost is the
 * table's size / 64 reads plus two map operations per open fd (an fd closed by close(2) was
 * forgotten then). Slot by slot, two map operations per slot, a process that had raised its table
 * to 32,768 slots cost 1.9 ms of kernel time at exit (services/probe/bench/fd-walk-cost.mjs). The
 * exec and close_range walks look at slots (their fds are closed already: no bit says which), up
 * to WS_MAX_EXIT_FDS; fds above it are left to the LRU. */
struct fd_walk {
	__u64 fdarr;       /* the fd table's array of struct file pointers */
	__u64 open_fds;    /* its bitmap of open fds (the exit walk) */
	__u32 tgid;
	__u32 first;
	__u8 syscall;
};

static long forget_fd_step(__u32 i, void *arg)
{
	struct fd_walk *w = arg;
	__u32 fd = w->first + i;
	struct file *f = NULL;
	if (bpf_probe_read_kernel(&f, sizeof(f), (void *)(w->fdarr + (__u64)fd * sizeof(f))) || f)
		return 0;
	forget_fd(w->tgid, fd, w->syscall);
	return 0;
}

/* Forgets the fds of [first, last] of the current process that hold no file any more (bounded by
 * its table and WS_MAX_EXIT_FDS). */
static __always_inline void forget_closed_fds(__u32 tgid, __u32 first, __u64 last, __u8 syscall)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task_btf();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt)
		return;
	__u32 max_fds = BPF_CORE_READ(fdt, max_fds);
	if (last >= max_fds)
		last = max_fds ? max_fds - 1 : 0;
	if (!max_fds || first > last)
		return;
	__u64 n = last - first + 1;
	if (n > WS_MAX_EXIT_FDS)
		n = WS_MAX_EXIT_FDS;
	struct fd_walk w = { .fdarr = (__u64)BPF_CORE_READ(fdt, fd), .tgid = tgid, .first = first, .syscall = syscall };
	bpf_loop(n, forget_fd_step, &w, 0);
}

/* The exit walk: the open fds of one word of the bitmap, lowest first. */
struct fd_bits {
	__u64 word;
	__u32 base;
	__u32 tgid;
};

/* The index of the one bit set in `bit`. */
static __always_inline __u32 bit_index(__u64 bit)
{
	__u32 n = 0;
	n += (bit & 0xFFFFFFFF00000000ULL) ? 32 : 0;
	n += (bit & 0xFFFF0000FFFF0000ULL) ? 16 : 0;
	n += (bit & 0xFF00FF00FF00FF00ULL) ? 8 : 0;
	n += (bit & 0xF0F0F0F0F0F0F0F0ULL) ? 4 : 0;
	n += (bit & 0xCCCCCCCCCCCCCCCCULL) ? 2 : 0;
	n += (bit & 0xAAAAAAAAAAAAAAAAULL) ? 1 : 0;
	return n;
}

static long forget_open_bit(__u32 i, void *arg)
{
	struct fd_bits *b = arg;
	if (!b->word)
		return 1;
	__u64 low = b->word & -b->word;
	b->word &= b->word - 1;
	forget_fd(b->tgid, b->base + bit_index(low), WS_SYS_EXIT);
	return 0;
}

static long forget_open_word(__u32 i, void *arg)
{
	struct fd_walk *w = arg;
	struct fd_bits b = { .base = i * 64, .tgid = w->tgid };
	if (bpf_probe_read_kernel(&b.word, sizeof(b.word), (void *)(w->open_fds + (__u64)i * sizeof(b.word))) || !b.word)
		return 0;
	bpf_loop(64, forget_open_bit, &b, 0);
	return 0;
}

/* Forgets every open fd of the current process (up to WS_MAX_EXIT_FDS). */
static __always_inline void forget_open_fds(__u32 tgid)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task_btf();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt)
		return;
	__u32 words = BPF_CORE_READ(fdt, max_fds) / 64;
	if (words > WS_MAX_EXIT_FDS / 64)
		words = WS_MAX_EXIT_FDS / 64;
	struct fd_walk w = { .open_fds = (__u64)BPF_CORE_READ(fdt, open_fds), .tgid = tgid };
	bpf_loop(words, forget_open_word, &w, 0);
}

SEC("tracepoint/sched/sched_process_exit")
int task_exit(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	bpf_map_delete_elem(&active_calls, &id);
	tls_forget_thread(id);
	if (tgid == self_tgid || !in_node())
		return 0;
	/* the group's last thread (live is decremented before the tracepoint; two threads exiting at
	 * once may both see 0: the second walk finds nothing left) */
	struct task_struct *task = (struct task_struct *)bpf_get_current_task_btf();
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	forget_open_fds(tgid);
	bpf_map_delete_elem(&proc_state, &tgid);
	return 0;
}

SEC("tracepoint/sched/sched_process_exec")
int task_exec(void *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (tgid == self_tgid || !in_node())
		return 0;
	struct proc_state *ps = bpf_map_lookup_elem(&proc_state, &tgid);
	if (!ps)
		return 0;
	if (ps->fd_entries)
		forget_closed_fds(tgid, 0, ~0ULL, WS_SYS_EXIT);
	if (!ps->announced)
		return 0;
	/* user space holds the identity of the program before: it reads it again (WS_EV_PROC_EXEC),
	 * and the new program's first open wakes the consumer as a new process's would */
	ps->announced = 0;
	struct ws_event_hdr ev = {};
	fill_hdr(&ev, WS_EV_PROC_EXEC, 0);
	if (bpf_ringbuf_output(&events, &ev, sizeof(ev), rb_flags()))
		count_drop(WS_DROP_RINGBUF_FULL);
	return 0;
}

/* close_range(first, last, flags): the fds it closed hold no file any more (CLOSE_RANGE_CLOEXEC
 * closes none: they are looked at and kept). */
SEC("tracepoint/syscalls/sys_enter_close_range")
int enter_close_range(struct trace_event_raw_sys_enter *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	if ((id >> 32) == self_tgid)
		return 0;
	struct call_args a = { .fd = ARG(ctx, 0), .buf = ARG(ctx, 1), .syscall = WS_SYS_CLOSE };
	if (bpf_map_update_elem(&active_calls, &id, &a, BPF_ANY))
		count_drop(WS_DROP_ARGS_MAP_FULL);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_close_range")
int exit_close_range(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct call_args *a = bpf_map_lookup_elem(&active_calls, &id);
	if (!a)
		return 0;
	__u32 first = a->fd;
	__u64 last = (__u32)a->buf;
	bpf_map_delete_elem(&active_calls, &id);
	if (ctx->ret == 0)
		forget_closed_fds(id >> 32, first, last, WS_SYS_CLOSE);
	return 0;
}
