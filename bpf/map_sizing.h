/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Every map size and compile-time bound of the probe, in one place. Runtime tunables (chunk cap,
 * per-call limit) live as const volatile rodata in wirescope.bpf.c and may only lower these. */
#ifndef WIRESCOPE_MAP_SIZING_H
#define WIRESCOPE_MAP_SIZING_H

/* Largest payload one event can carry; the per-CPU scratch buffer is this big. Power of two. */
#define WS_MAX_CHUNK 16384
/* Syscalls in flight between sys_enter and sys_exit (one per thread). */
#define WS_MAX_ACTIVE_CALLS 16384
/* TCP connections tracked at once, keyed by (tgid, fd). LRU: the oldest idle ones go first. */
#define WS_MAX_CONNS 65536
/* (tgid, fd) pairs known not to be TCP sockets (files, pipes, UDP, unix). LRU. */
#define WS_MAX_NONSOCK 65536
/* TLS library calls in flight between entry and return (one per thread). LRU: a thread killed
 * inside a call never returns (its entry is also removed at thread exit). */
#define WS_MAX_SSL_CALLS 16384
/* TLS objects (SSL*) whose socket fd is known, keyed by (tgid, pointer). LRU. */
#define WS_MAX_SSL_FDS 65536
/* TLS library files already attached (not announced again). */
#define WS_MAX_TLS_LIBS 256
/* Executable files inspected by user space (not announced again). LRU: an evicted one is only
 * announced and inspected once more. */
#define WS_MAX_EXECS 16384
/* Go TLS Reads in flight between (*Conn).Read's entry and its copy, keyed by (tgid, goroutine).
 * LRU: removed with their connection too (close, exit), but two Reads of one tls.Conn at once
 * leave the first's to the LRU. */
#define WS_MAX_GO_CALLS 16384
/* Go binaries with crypto/tls uprobes (slots of `go_tls_binaries`). */
#define WS_MAX_GO_BINARIES 256
/* Filter entries per kind (pids, comms, cgroups, ports). */
#define WS_MAX_FILTER 1024
/* Listening ports, used to infer the role of connections that predate the probe. */
#define WS_MAX_LISTEN_PORTS 4096
/* iovec entries followed per readv/writev/sendmsg/recvmsg (UIO_MAXIOV is 1024). */
#define WS_MAX_IOV 1024
/* fds of one process looked at when it exits or execs (its fd table, up to this): the entries of
 * fds above it are left to the LRU. */
#define WS_MAX_EXIT_FDS 65536
/* Processes with sampling and fairness state (accumulator, bytes this interval). LRU. */
#define WS_MAX_PROCS 16384
/* Server ends (process, listening port) that served requests while shed, and processes whose
 * client ends were answered while shed (port 0) (`shed_served`). LRU:
 * user space reads them every tick, so only ends idle since are evicted. */
#define WS_MAX_SHED_SERVED 8192
/* Decisions waiting for the other end of a connection on this node, by 4-tuple. LRU. */
#define WS_MAX_PEER_DECISIONS 16384
/* Default ring buffer size in bytes (power of two, multiple of the page size); set at load. */
#define WS_DEFAULT_RINGBUF_BYTES (16 * 1024 * 1024)
/* Default bytes copied per syscall; a bigger transfer states the rest as a gap (tunable). */
#define WS_DEFAULT_MAX_BYTES_PER_CALL (4 * 1024 * 1024)

#endif
