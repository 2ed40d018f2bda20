/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The one contract between the kernel programs (wirescope.bpf.c) and user space (the native addon
 * and, through the generated services/probe/src/gen/layout.ts, the TypeScript decoder).
 * Change a struct here and `make -C bpf` regenerates the TypeScript offsets; nothing else copies
 * these layouts by hand.
 *
 * Ring buffer records (all little-endian, naturally aligned):
 *
 *   ws_event_hdr (32 bytes) ─┬─ type = WS_EV_DATA      → ws_data_event  (hdr + 24 bytes + payload[len])
 *                            ├─ type = WS_EV_OPEN      → ws_conn_event  (hdr + addresses, role, comm)
 *                            ├─ type = WS_EV_CLOSE     → ws_conn_event
 *                            ├─ type = WS_EV_TLS_LIB   → ws_lib_event   (a TLS library mapped)
 *                            ├─ type = WS_EV_EXEC      → ws_exec_event  (an executable not inspected yet)
 *                            └─ type = WS_EV_PROC_EXEC → ws_event_hdr   (a process user space knows ran exec)
 *
 * TLS (bpf/tls.bpf.h): a connection whose socket bytes a TLS library moved is announced by a
 * second WS_EV_OPEN of its conn_key with WS_CONN_F_TLS set; from there on its data events carry
 * the plaintext of the library's read/write calls with seq counted from 0 again, and its socket
 * bytes (ciphertext) are no longer sent.
 *
 * A data event covers the byte range [seq, seq + original_length) of one direction of one
 * connection; only the first `len` bytes of it are in `payload`. len < original_length means the
 * capture left out the tail (per-call limit): a gap, stated, never silent.
 */
#ifndef WIRESCOPE_H
#define WIRESCOPE_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#include "map_sizing.h"

enum ws_event_type {
	WS_EV_DATA = 1,
	WS_EV_OPEN = 2,
	WS_EV_CLOSE = 3,
	WS_EV_TLS_LIB = 4,
	WS_EV_EXEC = 5,
	/* A process user space has heard of (an open of it reached the ring: proc_state.announced)
	 * started another executable (sched_process_exec): the header alone, ts_ns the exec's time
	 * (after the closes of its close-on-exec fds). User space reads the process's identity (comm,
	 * exe, cmdline) again for its events from then on; the new program's first open is flagged
	 * WS_CONN_F_NEW_PROC again. hdr.conn_key is 0. */
	WS_EV_PROC_EXEC = 6,
};

/* Values match wirescope.v1.Role and wirescope.v1.Direction. */
enum ws_role {
	WS_ROLE_UNKNOWN = 0,
	WS_ROLE_CLIENT = 1,
	WS_ROLE_SERVER = 2,
};

enum ws_direction {
	WS_DIR_EGRESS = 1,
	WS_DIR_INGRESS = 2,
};

/* Which syscall produced a data event (diagnostics only). */
enum ws_syscall {
	WS_SYS_READ = 1,
	WS_SYS_WRITE = 2,
	WS_SYS_READV = 3,
	WS_SYS_WRITEV = 4,
	WS_SYS_RECVFROM = 5,
	WS_SYS_SENDTO = 6,
	WS_SYS_RECVMSG = 7,
	WS_SYS_SENDMSG = 8,
	WS_SYS_SENDFILE = 9,
	WS_SYS_CONNECT = 10,
	WS_SYS_ACCEPT = 11,
	WS_SYS_CLOSE = 12,
	WS_SYS_DUP = 13,
	WS_SYS_SSL_READ = 14,  /* plaintext from a TLS library's read (SSL_read, SSL_read_ex) */
	WS_SYS_SSL_WRITE = 15, /* plaintext given to a TLS library's write */
	WS_SYS_EXIT = 16,      /* a close the kernel made without close(2): the process exited, or
				* exec closed the fd (close-on-exec) */
};

/* TLS libraries the probe reads plaintext from (ws_conn_event.tls_lib), with their names. */
#define WS_TLS_LIBS(X) \
	X(OPENSSL, "openssl") /* OpenSSL 1.1/3: SSL_read(_ex), SSL_write(_ex); libssl, or linked into node */ \
	X(GNUTLS, "gnutls")   /* GnuTLS 3: gnutls_record_recv, gnutls_record_send */ \
	X(GO, "go")            /* Go crypto/tls: (*Conn).Read, (*Conn).Write (bpf/tls-go.bpf.h) */

enum ws_tls_lib {
	WS_TLS_NONE = 0,
#define WS_TLS_ENUM(name, text) WS_TLS_##name,
	WS_TLS_LIBS(WS_TLS_ENUM)
#undef WS_TLS_ENUM
	WS_TLS_MAX,
};

/* Library files announced when a process maps them executable (sys_enter_mmap), by the start of
 * the file's name; NONE: a TLS library the probe cannot read, announced so user space can say
 * it is there (status warning, once per file). */
#define WS_TLS_FILES(X)                      \
	X("libssl.so", OPENSSL, "OpenSSL")    \
	X("libgnutls.so", GNUTLS, "GnuTLS")   \
	X("libssl3.so", NONE, "NSS")          \
	X("libwolfssl.so", NONE, "wolfSSL")   \
	X("libmbedtls.so", NONE, "Mbed TLS")

/* TLS counters: index into the per-CPU `tls_stats` array. None of them is a lost event of a
 * traced connection except no_fd and not_tcp (plaintext whose connection is unknown). */
#define WS_TLS_STATS(X)                                                                          \
	X(CIPHER_BYTES, "cipher_bytes_saved") /* socket bytes of TLS connections not sent */      \
	X(CALLS, "calls")                     /* read/write calls that gave plaintext */          \
	X(CALL_EMPTY, "call_empty")           /* calls returning <= 0 bytes (error, want read) */  \
	X(NO_FD, "no_fd")                     /* a TLS object never seen on a socket: dropped */  \
	X(NO_FD_START, "no_fd_at_start")      /* ... a call made before the syscall programs were attached (start) */ \
	X(NOT_TCP, "not_tcp")                 /* its fd is not a TCP socket (unix, pipe): dropped */\
	X(ABANDONED, "call_abandoned")        /* a thread exited inside a TLS call */             \
	X(LIB_MAPPED, "lib_mapped")           /* executable mappings of a TLS library announced */ \
	X(LINKED_AFTER, "linked_after_call")  /* objects linked by the handshake write after a call (memory BIO) */ \
	X(LINKED_BY_READ, "linked_by_read")   /* objects linked by the socket read before their first SSL_read (memory BIO, opened before the probe) */ \
	X(EXEC_ANNOUNCED, "exec_announced")   /* executables started, not inspected yet: announced */ \
	X(GO_NO_FD, "go_no_fd")               /* Go tls.Conn whose socket could not be read: dropped */ \
	X(GO_NOT_TCPCONN, "go_not_tcpconn")   /* Go tls.Conn over another net.Conn than *TCPConn */ \
	X(GO_READ_CLOSED, "go_read_closed")   /* Go Read copying after its socket was closed: dropped */ \
	X(GO_READ_FORGOTTEN, "go_read_forgotten") /* Go Read pending when its connection went (close, exit, exec) */ \
	X(GO_CALL_CLOSED, "go_call_closed")   /* Go Read/Write entered after its socket was closed: no bytes move */ \
	X(HELD_CONNS, "cipher_held_conns")    /* connections first seen mid-way as TLS records: ciphertext held back */ \
	X(HELD_BYTES, "cipher_held_bytes")    /* ... their socket bytes not sent (no plaintext until a TLS open) */ \
	X(WRITE_AT_EXIT, "write_at_exit")     /* a thread killed inside a write its ciphertext had left by: plaintext sent at its exit */

enum ws_tls_stat {
#define WS_TLS_STAT_ENUM(name, text) WS_TLS_STAT_##name,
	WS_TLS_STATS(WS_TLS_STAT_ENUM)
#undef WS_TLS_STAT_ENUM
	WS_TLS_STAT_MAX,
};

/* Why an event was lost in the kernel: index into the per-CPU `drops` array. One list, expanded
 * into the enum here and into the names user space reports (gen-layout.c). */
#define WS_DROP_REASONS(X)                                                                          \
	X(RINGBUF_FULL, "ringbuf_full")   /* bpf_ringbuf_output failed: user space is behind */     \
	X(READ_USER, "read_user")         /* payload or iovec could not be read from the process */ \
	X(CONN_MAP_FULL, "conn_map_full") /* no room to track a new connection */                   \
	X(ARGS_MAP_FULL, "args_map_full") /* no room to save a syscall's arguments */               \
	X(IOV_LIMIT, "iov_limit")         /* more iovecs than WS_MAX_IOV: the rest is a gap */      \
	X(NO_SCRATCH, "no_scratch")       /* per-CPU scratch buffer missing (never expected) */

enum ws_drop_reason {
#define WS_DROP_ENUM(name, text) WS_DROP_##name,
	WS_DROP_REASONS(WS_DROP_ENUM)
#undef WS_DROP_ENUM
	WS_DROP_MAX,
};

/* Why a connection is not observed (shed): conn_info.shed, ws_conn_event.shed, and the index
 * into the per-CPU `shed_stats` array (WS_SHED_STATS below). A connection is observed or shed as a whole: decided at first sight
 * (connect, accept, or the first call on a socket that predates the probe), and a connection
 * that goes over its fairness budget is shed for the rest of its life, announced by a close with
 * WS_CONN_F_SHED. Its bytes are never copied once shed. */
#define WS_SHED_REASONS(X)                                                                           \
	X(BUDGET, "budget")            /* not in the observed fraction of new connections (CPU budget) */ \
	X(CONN_FLOOD, "conn_flood")    /* the connection went over its bytes/calls per interval */      \
	X(PROC_FLOOD, "proc_flood")    /* its process went over its bytes per interval */               \
	X(RINGBUF, "ringbuf_pressure") /* the ring buffer was fuller than its threshold at first sight */

enum ws_shed_reason {
	WS_SHED_NONE = 0,
#define WS_SHED_ENUM(name, text) WS_SHED_##name,
	WS_SHED_REASONS(WS_SHED_ENUM)
#undef WS_SHED_ENUM
	WS_SHED_MAX,
};

/* Entries of the per-CPU `shed_stats` array, by enum ws_shed_reason r: connections shed at [r],
 * bytes not copied for them at [WS_SHED_MAX + r], and answers (requests served or answered) that
 * started while their connection was shed, at server ends [2 * WS_SHED_MAX + r] and at client
 * ends [3 * WS_SHED_MAX + r]. */
#define WS_SHED_STATS (4 * WS_SHED_MAX)

/* Key of the per-CPU LRU hash `shed_served`: requests served (answers started at a server end)
 * while the connection was shed, for any reason, by server process and local (listening) port,
 * host byte order; port 0: requests answered at the process's client ends. User space reads the running totals every tick and publishes what they grew
 * by (ShedReport, docs/probe.md), so that the aggregator counts what each server served exactly:
 * observed + shed, not only observed / fraction. */
struct ws_shed_served_key {
	__u32 tgid;
	__u16 port;
	__u16 _pad;
};

/* sample_level that observes every new connection: a level of L observes L / WS_SAMPLE_ONE of
 * them (ws_shed_cfg.sample_level, ws_conn_event.sample_level). */
#define WS_SAMPLE_ONE 32768

/* Connection flags (ws_conn_event.flags). */
#define WS_CONN_F_INFERRED 1 /* existed before the probe saw connect/accept; role inferred */
#define WS_CONN_F_TLS 2      /* data is the plaintext of a TLS library (tls_lib says which) */
#define WS_CONN_F_SHED 4     /* on a close: the probe stopped observing it (shed says why); the
			      * socket may live on, and nothing more of it is sent */
#define WS_CONN_F_NEW_PROC 8 /* on an open: the first of its process that user space hears of; only
			      * this one wakes the consumer at once (it reads /proc/<tgid> while the
			      * process exists), the opens after it travel with the data */
#define WS_CONN_F_REOPEN 16  /* on an open: a connection decided again at a request boundary starts a
			      * new byte stream under its conn_key (seq from 0); user space cuts its
			      * partition before it, so that no message holds the old stream's last
			      * bytes or its shed close together with the new stream's open */

/* Filter actions stored as values of the filter maps. */
/* ws_data_event.flags */
#define WS_DATA_F_ANSWER 1 /* this call starts an answer at a server end (a write after a read, or its
			    * first call a write): a request served, counted per partition in RawBatch.served */

#define WS_FILTER_ALLOW 1
#define WS_FILTER_DENY 2

#define WS_COMM_LEN 16

struct ws_event_hdr {
	__u32 type;       /* enum ws_event_type */
	__u32 tgid;       /* process id */
	__u32 tid;        /* thread id */
	__u32 _pad0;
	__u64 ts_ns;      /* CLOCK_MONOTONIC (bpf_ktime_get_ns) */
	__u64 conn_key;   /* unique per connection for this probe instance */
};

struct ws_data_event {
	struct ws_event_hdr hdr;
	__u64 seq;              /* bytes of this direction before this event */
	__u32 original_length;  /* bytes this event stands for */
	__u32 len;              /* bytes in payload (<= original_length) */
	__u8 direction;         /* enum ws_direction */
	__u8 syscall;           /* enum ws_syscall */
	__u8 flags;             /* WS_DATA_F_* (on a call's first event only) */
	__u8 stream;            /* the connection's byte stream (conn_info.stream), for copy policies */
	__u32 fd;
	__u8 payload[WS_MAX_CHUNK];
};

struct ws_conn_event {
	struct ws_event_hdr hdr;
	__u64 cgroup_id;
	__u8 laddr[16];         /* IPv4 in the first 4 bytes when family == AF_INET */
	__u8 raddr[16];
	__u16 lport;            /* host byte order */
	__u16 rport;
	__u16 family;           /* AF_INET or AF_INET6 */
	__u8 role;              /* enum ws_role */
	__u8 flags;             /* WS_CONN_F_* */
	__u32 fd;
	__u8 syscall;           /* enum ws_syscall that opened/closed it */
	__u8 tls_lib;           /* enum ws_tls_lib when flags has WS_CONN_F_TLS */
	__u8 _pad2[2];
	__u64 sent_bytes;       /* totals at close */
	__u64 recv_bytes;
	char comm[WS_COMM_LEN]; /* thread-group leader's comm */
	__u16 sample_level;     /* open: the level in force when it was decided (observed fraction =
				 * sample_level / WS_SAMPLE_ONE) */
	__u8 shed;              /* close with WS_CONN_F_SHED: enum ws_shed_reason */
	__u8 _pad3[5];
};

/* A TLS library was mapped executable by a process (mmap with PROT_EXEC of a file named like
 * one): user space finds its path in /proc/<tgid>/maps by (dev, ino) and attaches uprobes once per
 * file. hdr.conn_key is 0. Files already attached (map `tls_libs_known`) are not announced. */
struct ws_lib_event {
	struct ws_event_hdr hdr;
	__u64 ino;
	__u32 dev;              /* kernel dev_t: major << 20 | minor */
	__u8 tls_lib;           /* enum ws_tls_lib */
	__u8 _pad3[3];
};

/* A process started an executable file (sched_process_exec) whose (dev, ino) user space has not
 * inspected yet (map `exec_known`). User space opens the file through /proc/<tgid>/exe, or, when
 * the process is already gone (a short-lived client), by `filename` (as execve got it) checked
 * against ino; attaches what it recognizes (a Go binary with crypto/tls, ...) and records the file
 * in `exec_known` whatever the verdict. hdr.conn_key is 0. */
#define WS_EXEC_PATH_LEN 256
struct ws_exec_event {
	struct ws_event_hdr hdr;
	__u64 ino;
	__u32 dev;              /* kernel dev_t: major << 20 | minor */
	__u32 _pad4;
	char filename[WS_EXEC_PATH_LEN]; /* NUL-terminated, possibly cut or relative */
};

/* Key of `tls_libs_known` and `exec_known`: a file by device and inode. */
struct ws_lib_key {
	__u64 ino;
	__u32 dev;
	__u32 _pad;
};

/* What the Go crypto/tls programs need to know of one Go binary (array `go_tls_binaries`, index =
 * the uprobe's attach cookie), read by user space from the binary's DWARF and symbol table:
 *
 *   *tls.Conn ──+conn_iface──▶ net.Conn {itab, data} ──data──▶ *net.TCPConn
 *        ──+tcpconn_fd──▶ *netFD ──+netfd_sysfd──▶ int Sysfd (pfd poll.FD's)
 *
 * Addresses are the binary's link-time ones; a position-independent binary's load bias is the
 * probed address minus read_entry (or write_entry). */
struct ws_go_tls {
	__u64 itab_tcpconn;  /* go:itab.*net.TCPConn,net.Conn; 0: not checked */
	__u64 read_entry;    /* address of the entry probe of crypto/tls.(*Conn).Read */
	__u64 write_entry;   /* address of the entry probe of crypto/tls.(*Conn).Write */
	__u32 conn_iface;    /* tls.Conn.conn */
	__u32 tcpconn_fd;    /* net.TCPConn.conn + net.conn.fd */
	__u32 netfd_sysfd;   /* net.netFD.pfd + internal/poll.FD.Sysfd */
	__u32 _pad;
};

/* Runtime switches for the allow lists (array map `filter_cfg`, one entry). When an allow list
 * is on, only matching processes/connections are traced; deny entries always win. */
struct ws_filter_cfg {
	__u32 allow_pids_on;
	__u32 allow_comms_on;
	__u32 allow_cgroups_on;
	__u32 allow_ports_on;
};

/* Copy policy of one connection (map `copy_policy`, key: conn_key), set by user space for
 * connections whose framing it follows (HTTP/1.1 bodies it states as gaps anyway). Its presence
 * vouches for the connection's turns (conn_info.turns). body_end[d] (0 egress, 1 ingress) is the
 * stream offset where a body of known length that user space has parsed the head of ends (a
 * Content-Length body, or one chunk's data): the bytes of a call before it are stated as a gap
 * instead of copied (an event with no payload), the rest of the call is copied, so a cut never
 * crosses framing user space has not seen. Only for the byte stream it was declared in (`stream`
 * equal to conn_info.stream: a stream restarted from seq 0 is another one). Removed at close. */
struct ws_copy_policy {
	__u64 body_end[2];
	__u8 stream;
	__u8 _pad[7];
};

/* Overload policy (array map `shed_cfg`, one entry), set by user space. interval_ns == 0 (never
 * set) observes everything. Limits of 0 are off.
 *
 * Sampling is systematic per process: each process has an accumulator (started at a hash of its
 * tgid, so the phase differs between processes); a new connection adds sample_level to it and is
 * observed when it passes WS_SAMPLE_ONE. Among n new connections of a process, n * level / ONE
 * are observed, +-1: with evenly loaded connections the scaled counts are exact, not only right
 * on average. The other end of a connection on this node follows the first end's decision (map
 * `peer_decision`, by 4-tuple), so a call is observed at both ends or at neither. */
struct ws_shed_cfg {
	__u32 sample_level;     /* 0..WS_SAMPLE_ONE */
	__u32 ringbuf_pct;      /* new connections are shed while the ring holds more than this % */
	__u64 interval_ns;      /* fairness accounting interval */
	__u64 conn_bytes;       /* bytes a connection may have copied per interval */
	__u64 conn_calls;       /* data calls a connection may make per interval */
	__u64 proc_bytes;       /* bytes a process may have copied per interval: above it its new
				 * connections are shed, above twice it every call sheds its connection */
	__u32 epoch;            /* steered sampling: user space advances it every tick, and a clean-turn
				 * connection decided in another epoch is decided again at its next request
				 * (not only at a change of level: see redecide_at_boundary) */
	__u32 _pad;
};

/* Key of the per-fd maps. */
struct ws_fd_key {
	__u32 tgid;
	__u32 fd;
};

#endif
