// Wirescope probe native addon: thin on purpose. It opens the BPF skeleton, sets the tunables,
// loads, attaches, and runs one poll thread that copies ring-buffer records into batches. A batch
// is flushed when it reaches `batchBytes` or gets older than `batchMs` and goes to JS as ONE Buffer
// through a bounded ThreadSafeFunction; when JS is behind, the batch is dropped and counted — the
// poller never blocks, so the traced applications never wait for us. Decoding is done in
// TypeScript (services/probe/src/decode.ts) with offsets generated from bpf/wirescope.h.
//
// Batch format: a sequence of records, each `u32 length (LE)` + that many bytes of one ring-buffer
// record (ws_data_event truncated to its payload, or ws_conn_event), padded to 8 bytes.
#include <napi.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <csignal>
#include <fcntl.h>
#include <pthread.h>
#include <mutex>
#include <string>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <bpf/libbpf.h>
#include <bpf/bpf.h>

#include "wirescope.h"
#include "wirescope.skel.h"

namespace {

// libbpf's messages (verifier log included) of the current open/load, for error reports.
std::mutex g_log_mu;
std::string g_log;

int libbpf_print(enum libbpf_print_level level, const char* fmt, va_list ap) {
  if (level == LIBBPF_DEBUG) return 0;
  char buf[2048];
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  std::lock_guard<std::mutex> lock(g_log_mu);
  if (g_log.size() < 64 * 1024) g_log.append(buf, n > 0 ? std::min<size_t>(n, sizeof buf - 1) : 0);
  return 0;
}

std::string take_log() {
  std::lock_guard<std::mutex> lock(g_log_mu);
  std::string s;
  s.swap(g_log);
  if (s.size() > 4000) s = "..." + s.substr(s.size() - 4000);
  return s;
}

Napi::Error probe_error(Napi::Env env, const char* code, const std::string& msg) {
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, code));
  return e;
}

bool has_cap(int cap) {
  FILE* f = fopen("/proc/self/status", "r");
  if (!f) return false;
  char line[256];
  unsigned long long eff = 0;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "CapEff:", 7) == 0) eff = strtoull(line + 7, nullptr, 16);
  }
  fclose(f);
  return (eff >> cap) & 1ULL;
}

const char* tracefs_events() {
  if (access("/sys/kernel/tracing/events/syscalls/sys_enter_read", F_OK) == 0) return "/sys/kernel/tracing";
  if (access("/sys/kernel/debug/tracing/events/syscalls/sys_enter_read", F_OK) == 0) return "/sys/kernel/debug/tracing";
  return nullptr;
}

// Events handed to the ThreadSafeFunction and not yet delivered to JS. Shared with the batches
// themselves, because the last queued batches can be finalized after the Probe is gone.
struct QueueCounter {
  std::atomic<uint64_t> events{0};
};

// A TLS library mapped by a process, or an executable started (ws_lib_event of type WS_EV_TLS_LIB
// or WS_EV_EXEC), handed to JS by its own ThreadSafeFunction: JS finds the file and attaches. Also
// a known process that ran exec (WS_EV_PROC_EXEC): JS reads its identity again from `ts` on.
struct LibNotice {
  uint32_t type;
  uint32_t tgid;
  uint32_t dev;
  uint64_t ino;
  uint8_t lib;
  std::string filename;  // WS_EV_EXEC: the path execve was given
  uint64_t ts = 0;       // WS_EV_PROC_EXEC: when (CLOCK_MONOTONIC ns, as the events' timestamps)
};

// Batch memory, reused. A batch handed to JS comes back when its Buffer is finalized; JS detaches
// the Buffer as soon as it is done with it (the callback returns true), so a block comes back
// within a loop turn instead of at the next GC. Without this every batch was a fresh external
// ArrayBuffer, and tens of MB/s of them made V8 run a full mark-compact several times a second
// (its external-memory limit), a quarter of the probe's CPU. Shared with the Buffers' finalizers,
// which can run after the Probe is gone.
struct BlockPool {
  explicit BlockPool(size_t block) : block(block) {}
  ~BlockPool() {
    for (uint8_t* p : free_) ::free(p);
  }
  uint8_t* Take() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!free_.empty()) {
        uint8_t* p = free_.back();
        free_.pop_back();
        return p;
      }
    }
    return static_cast<uint8_t*>(malloc(block));
  }
  void Give(uint8_t* p) {
    if (!p) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      // as many as can be in flight at once (the JS queue) are worth keeping; more is memory idle
      if (free_.size() < kKeep) {
        free_.push_back(p);
        return;
      }
    }
    ::free(p);
  }
  static constexpr size_t kKeep = 8;
  const size_t block;

 private:
  std::mutex mu_;
  std::vector<uint8_t*> free_;
};

struct Batch {
  uint8_t* data;
  size_t len;
  uint32_t events;
  std::shared_ptr<QueueCounter> queued;
  std::shared_ptr<BlockPool> pool;
};

class Probe : public Napi::ObjectWrap<Probe> {
 public:
  static Napi::Object Init(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(env, "Probe",
                                      {
                                          InstanceMethod("stats", &Probe::Stats),
                                          InstanceMethod("setFilterEntry", &Probe::SetFilterEntry),
                                          InstanceMethod("setFilterConfig", &Probe::SetFilterConfig),
                                          InstanceMethod("setListenPorts", &Probe::SetListenPorts),
                                          InstanceMethod("setCopyPolicy", &Probe::SetCopyPolicy),
                                          InstanceMethod("setCopyPolicies", &Probe::SetCopyPolicies),
                                          InstanceMethod("setShedConfig", &Probe::SetShedConfig),
                                          InstanceMethod("shedStats", &Probe::ShedStats),
                                          InstanceMethod("shedServed", &Probe::ShedServed),
                                          InstanceMethod("ringFill", &Probe::RingFill),
                                          InstanceMethod("programs", &Probe::Programs),
                                          InstanceMethod("attachTls", &Probe::AttachTls),
                                          InstanceMethod("tlsStats", &Probe::TlsStats),
                                          InstanceMethod("markTlsKnown", &Probe::MarkTlsKnown),
                                          InstanceMethod("attachUprobes", &Probe::AttachUprobes),
                                          InstanceMethod("setMapEntry", &Probe::SetMapEntry),
                                          InstanceMethod("attach", &Probe::Attach),
                                          InstanceMethod("close", &Probe::Close),
                                      });
    exports.Set("Probe", ctor);
    return exports;
  }

  // new Probe(options, onBatch(buffer)[, onTlsLibrary({tgid, dev, ino, lib})])
  Probe(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Probe>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsFunction()) {
      probe_error(env, "EINVAL", "new Probe(options, onBatch): options object and callback required").ThrowAsJavaScriptException();
      return;
    }
    Napi::Object o = info[0].As<Napi::Object>();
    auto num = [&](const char* k, double d) {
      Napi::Value v = o.Get(k);
      return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : d;
    };
    uint32_t chunk = (uint32_t)num("chunkBytes", WS_MAX_CHUNK);
    uint32_t per_call = (uint32_t)num("maxBytesPerCall", WS_DEFAULT_MAX_BYTES_PER_CALL);
    uint32_t ringbuf = (uint32_t)num("ringbufBytes", WS_DEFAULT_RINGBUF_BYTES);
    batch_bytes_ = (size_t)num("batchBytes", 1024 * 1024);
    batch_ms_ = (int)num("batchMs", 50);
    size_t queue = (size_t)num("queueBatches", 64);
    uint32_t self_tgid = (uint32_t)num("selfTgid", getpid());
    uint64_t key_base = 0;
    if (o.Get("connKeyBase").IsBigInt()) {
      bool lossless;
      key_base = o.Get("connKeyBase").As<Napi::BigInt>().Uint64Value(&lossless);
    }
    std::string lock_path;
    if (o.Get("lockPath").IsString()) lock_path = o.Get("lockPath").As<Napi::String>().Utf8Value();
    bool mount_tracefs = o.Get("mountTracefs").ToBoolean();
    bool defer_attach = o.Get("deferAttach").ToBoolean();
    bool hold_cipher = o.Get("holdInferredCipher").ToBoolean();
    uint32_t netns_ino = (uint32_t)num("netnsIno", 0);

    if (chunk == 0 || chunk > WS_MAX_CHUNK) {
      probe_error(env, "EINVAL", "chunkBytes must be 1.." + std::to_string(WS_MAX_CHUNK)).ThrowAsJavaScriptException();
      return;
    }
    if (ringbuf < 4096 || (ringbuf & (ringbuf - 1))) {
      probe_error(env, "EINVAL", "ringbufBytes must be a power of two >= 4096").ThrowAsJavaScriptException();
      return;
    }
    if (batch_bytes_ < 64 * 1024) batch_bytes_ = 64 * 1024;
    if (batch_ms_ < 1) batch_ms_ = 1;
    if (queue < 1) queue = 1;

    // Each check says what to do about it.
    if (geteuid() != 0 && !(has_cap(39 /* CAP_BPF */) && has_cap(38 /* CAP_PERFMON */)) && !has_cap(21 /* CAP_SYS_ADMIN */)) {
      probe_error(env, "EPERM",
                  "eBPF needs root (or CAP_BPF + CAP_PERFMON + CAP_DAC_READ_SEARCH): run as root, e.g. `sudo wirescope probe`, "
                  "or use `--source pcap FILE` to replay a capture")
          .ThrowAsJavaScriptException();
      return;
    }
    struct utsname u;
    uname(&u);
    int maj = 0, min = 0;
    sscanf(u.release, "%d.%d", &maj, &min);
    if (maj < 5 || (maj == 5 && min < 17)) {
      probe_error(env, "EKERNEL",
                  std::string("kernel ") + u.release + " is too old: the probe needs Linux >= 5.17 (BPF ring buffer, bpf_loop, BTF); "
                  "use `--source pcap FILE` on this machine")
          .ThrowAsJavaScriptException();
      return;
    }
    if (access("/sys/kernel/btf/vmlinux", R_OK) != 0) {
      probe_error(env, "ENOBTF",
                  "this kernel has no BTF (/sys/kernel/btf/vmlinux missing): use a kernel built with CONFIG_DEBUG_INFO_BTF=y, "
                  "or `--source pcap FILE`")
          .ThrowAsJavaScriptException();
      return;
    }
    if (!tracefs_events()) {
      if (mount_tracefs) {
        if (mount("nodev", "/sys/kernel/tracing", "tracefs", 0, nullptr) != 0 || !tracefs_events()) {
          probe_error(env, "ENOTRACEFS", std::string("could not mount tracefs on /sys/kernel/tracing: ") + strerror(errno))
              .ThrowAsJavaScriptException();
          return;
        }
      } else {
        probe_error(env, "ENOTRACEFS",
                    "tracefs is not mounted (syscall tracepoints unavailable): run `mount -t tracefs nodev /sys/kernel/tracing` "
                    "or start with --mount-tracefs")
            .ThrowAsJavaScriptException();
        return;
      }
    }
    // The lock keeps two probes from recording the same connections (each would send it: the
    // aggregator would count it twice). A whole-host probe holds it exclusively; a node's probe
    // (netnsIno) holds it shared, so node probes run side by side but never beside a whole-host
    // one, plus its node's own lock exclusively (one probe per node).
    if (!lock_path.empty()) {
      lock_fd_ = TakeLock(env, lock_path, netns_ino != 0, netns_ino ? "for the whole host" : "on this host");
      if (lock_fd_ < 0) return;
      if (netns_ino) {
        node_lock_fd_ = TakeLock(env, lock_path + ".netns-" + std::to_string(netns_ino), false, "for this network namespace");
        if (node_lock_fd_ < 0) {
          close(lock_fd_);
          lock_fd_ = -1;
          return;
        }
      }
    }

    libbpf_set_print(libbpf_print);
    take_log();
    // The verifier gives up with EAGAIN when a signal arrives during a (long) load; try again.
    int err = 0;
    for (int attempt = 0; attempt < 3; attempt++) {
      skel_ = wirescope_bpf__open();
      if (!skel_) {
        Fail(env, "ELOAD", std::string("opening the BPF object failed: ") + strerror(errno));
        return;
      }
      skel_->rodata->self_tgid = self_tgid;
      skel_->rodata->chunk_bytes = chunk;
      skel_->rodata->max_bytes_per_call = per_call;
      skel_->rodata->conn_key_base = key_base;
      skel_->rodata->netns_ino = netns_ino;
      skel_->rodata->hold_inferred_cipher = hold_cipher ? 1 : 0;
      // wake the poller when a batch worth of data (at most a quarter of the ring) is waiting
      skel_->rodata->wakeup_bytes = std::min<uint64_t>(batch_bytes_, ringbuf / 4);
      bpf_map__set_max_entries(skel_->maps.events, ringbuf);
      // one scratch entry per CPU (indexed by CPU id in the programs)
      bpf_map__set_max_entries(skel_->maps.data_scratch, libbpf_num_possible_cpus());
      // block signals while the verifier runs (a profiler's SIGPROF would abort it every time)
      sigset_t all, old;
      sigfillset(&all);
      pthread_sigmask(SIG_BLOCK, &all, &old);
      err = wirescope_bpf__load(skel_);
      pthread_sigmask(SIG_SETMASK, &old, nullptr);
      if (err != -EAGAIN) break;
      wirescope_bpf__destroy(skel_);
      skel_ = nullptr;
    }
    if (err) {
      Fail(env, "ELOAD", std::string("loading the BPF programs failed (") + strerror(-err) + "): " + take_log());
      return;
    }
    if (defer_attach) {
      // Only the announcements now (a TLS library mapped, an executable started), so a process
      // that starts while user space fills the maps and attaches the TLS uprobes is not missed;
      // the data and lifecycle programs wait for attach(): a connection they see then has its
      // ports' roles, the filters and its TLS library's uprobes in place (docs/probe.md, "Start").
      skel_->links.tls_enter_mmap = bpf_program__attach(skel_->progs.tls_enter_mmap);
      skel_->links.tls_exec = skel_->links.tls_enter_mmap ? bpf_program__attach(skel_->progs.tls_exec) : nullptr;
      if (!skel_->links.tls_exec) {
        Fail(env, "EATTACH", std::string("attaching the BPF announcement programs failed (") + strerror(errno) + "): " + take_log());
        return;
      }
    } else {
      err = wirescope_bpf__attach(skel_);
      if (err) {
        Fail(env, "EATTACH", std::string("attaching the BPF programs failed (") + strerror(-err) + "): " + take_log());
        return;
      }
      skel_->bss->data_attached = 1;
    }
    rb_ = ring_buffer__new(bpf_map__fd(skel_->maps.events), &Probe::OnRecord, this, nullptr);
    if (!rb_) {
      Fail(env, "ELOAD", std::string("ring buffer setup failed: ") + strerror(errno));
      return;
    }

    // the ring's positions, read-only, for its fill level (libbpf 1.1 has no accessor): the
    // consumer position on the first page, the producer's on the second, as libbpf maps them
    ring_size_ = ringbuf;
    long page = sysconf(_SC_PAGESIZE);
    void* cons = mmap(nullptr, page, PROT_READ, MAP_SHARED, bpf_map__fd(skel_->maps.events), 0);
    void* prod = mmap(nullptr, page, PROT_READ, MAP_SHARED, bpf_map__fd(skel_->maps.events), page);
    if (cons != MAP_FAILED) ring_cons_ = static_cast<const volatile uint64_t*>(cons);
    if (prod != MAP_FAILED) ring_prod_ = static_cast<const volatile uint64_t*>(prod);

    // released by Shutdown; the batches still queued to JS are delivered first, then the
    // finalizer tells close()'s caller (Drain) that no batch will come any more
    drain_ = new Drain();
    tsfn_ = Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "wirescope-probe", queue, 1, drain_,
                                          [](Napi::Env env, void*, Drain* d) { Drained(env, d); }, static_cast<void*>(nullptr));
    if (info.Length() >= 3 && info[2].IsFunction()) {
      lib_tsfn_ = Napi::ThreadSafeFunction::New(env, info[2].As<Napi::Function>(), "wirescope-tls-lib", 1024, 1);
      has_lib_tsfn_ = true;
    }
    NewBatch();
    running_ = true;
    poller_ = std::thread([this] { Poll(); });
    napi_add_env_cleanup_hook(env, &Probe::Cleanup, this);
    cleanup_hook_ = true;
  }

  ~Probe() override {
    if (cleanup_hook_) napi_remove_env_cleanup_hook(Env(), &Probe::Cleanup, this);
    Shutdown();
  }

 private:
  // flock()s path (shared or exclusive, never waiting) and returns its fd; on failure throws
  // ELOCK/ELOCKED naming who holds it and returns -1. An exclusive holder writes its pid in it.
  static int TakeLock(Napi::Env env, const std::string& path, bool shared, const char* scope) {
    int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      probe_error(env, "ELOCK", "cannot open lock file " + path + ": " + strerror(errno)).ThrowAsJavaScriptException();
      return -1;
    }
    if (flock(fd, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
      // held shared (only node probes hold it so) when a shared lock can still be had
      bool nodes = !shared && flock(fd, LOCK_SH | LOCK_NB) == 0;
      char other[32] = {0};
      ssize_t r = nodes ? 0 : pread(fd, other, sizeof other - 1, 0);
      if (r < 0) r = 0;
      other[r] = 0;
      close(fd);
      std::string who = nodes ? "probes of network namespaces (--netns) are running on this host"
                               : std::string("another wirescope probe is already running ") +
                                     scope + " (pid " + (other[0] ? other : "?") + ")";
      probe_error(env, "ELOCKED", who + ", lock " + path + ": stop it first, or use `wirescope capture` which runs alongside")
          .ThrowAsJavaScriptException();
      return -1;
    }
    if (!shared) {
      std::string pid = std::to_string(getpid());
      if (ftruncate(fd, 0) == 0) (void)!pwrite(fd, pid.data(), pid.size(), 0);
    }
    return fd;
  }

  void Fail(Napi::Env env, const char* code, const std::string& msg) {
    Shutdown();
    probe_error(env, code, msg).ThrowAsJavaScriptException();
  }

  static void Cleanup(void* arg) { static_cast<Probe*>(arg)->Shutdown(); }

  // Destroys `links`. Each detach waits for the kernel (an RCU grace period, tens of milliseconds
  // on a busy or virtual machine): 47 links one after another held close() 2.5 s. From up to 16
  // threads at once the waits overlap where the kernel lets them (1.56 s; the syscall
  // tracepoints' detaches still take one kernel lock in turn).
  static void DestroyLinks(const std::vector<struct bpf_link*>& links) {
    const size_t n = links.size();
    std::atomic<size_t> next{0};
    auto work = [&]() {
      for (size_t i; (i = next.fetch_add(1)) < n;) bpf_link__destroy(links[i]);
    };
    std::vector<std::thread> pool;
    for (size_t t = 1; t < std::min<size_t>(n, 16); t++) {
      try {
        pool.emplace_back(work);
      } catch (...) {
        break;  // no thread: this one does the rest
      }
    }
    work();
    for (std::thread& t : pool) t.join();
  }

  // Stops the poller and detaches every program (the links are owned by this process, so an
  // exit or crash detaches them too).
  void Shutdown() {
    if (running_.exchange(false)) {
      if (poller_.joinable()) poller_.join();
      tsfn_.Release();
      if (has_lib_tsfn_) lib_tsfn_.Release();
    }
    // Every link before the skeleton's programs go: the uprobe links and the skeleton's own.
    std::vector<struct bpf_link*> links;
    links.swap(tls_links_);
    if (skel_) {
      const struct bpf_object_skeleton* s = skel_->skeleton;
      for (int i = 0; s && i < s->prog_cnt; i++) {
        auto* ps = reinterpret_cast<const struct bpf_prog_skeleton*>(reinterpret_cast<const char*>(s->progs) + (size_t)i * s->prog_skel_sz);
        if (ps->link && *ps->link) {
          links.push_back(*ps->link);
          *ps->link = nullptr;  // the skeleton's destroy skips it
        }
      }
    }
    DestroyLinks(links);
    long page = sysconf(_SC_PAGESIZE);
    if (ring_cons_) munmap((void*)ring_cons_, page);
    if (ring_prod_) munmap((void*)ring_prod_, page);
    ring_cons_ = ring_prod_ = nullptr;
    if (rb_) {
      ring_buffer__free(rb_);
      rb_ = nullptr;
    }
    if (skel_) {
      wirescope_bpf__destroy(skel_);
      skel_ = nullptr;
    }
    if (pool_) pool_->Give(cur_.data);
    cur_.data = nullptr;
    if (node_lock_fd_ >= 0) {
      close(node_lock_fd_);
      node_lock_fd_ = -1;
    }
    if (lock_fd_ >= 0) {
      close(lock_fd_);
      lock_fd_ = -1;
    }
  }

  void NewBatch() {
    if (!pool_) pool_ = std::make_shared<BlockPool>(batch_bytes_ + sizeof(ws_data_event) + 16);
    cur_.data = pool_->Take();
    cur_.len = 0;
    cur_.events = 0;
    batch_start_ = std::chrono::steady_clock::now();
  }

  static void CallLibJs(Napi::Env env, Napi::Function fn, LibNotice* n) {
    if (env != nullptr && fn != nullptr) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("tgid", Napi::Number::New(env, n->tgid));
      o.Set("dev", Napi::Number::New(env, n->dev));
      o.Set("ino", Napi::Number::New(env, (double)n->ino));
      o.Set("lib", Napi::Number::New(env, n->lib));
      o.Set("exec", Napi::Boolean::New(env, n->type == WS_EV_EXEC));
      if (n->type == WS_EV_EXEC) o.Set("filename", Napi::String::New(env, n->filename));
      if (n->type == WS_EV_PROC_EXEC) {
        o.Set("procExec", Napi::Boolean::New(env, true));
        o.Set("ts", Napi::BigInt::New(env, n->ts));
      }
      fn.Call({o});
    }
    delete n;
  }

  static int OnRecord(void* ctx, void* data, size_t size) {
    Probe* self = static_cast<Probe*>(ctx);
    const ws_event_hdr* hdr = static_cast<const ws_event_hdr*>(data);
    if ((size >= sizeof(ws_lib_event) && hdr->type == WS_EV_TLS_LIB) || (size >= sizeof(ws_exec_event) && hdr->type == WS_EV_EXEC) ||
        (size >= sizeof(ws_event_hdr) && hdr->type == WS_EV_PROC_EXEC)) {
      // not traffic: to JS on its own channel, never in a batch
      LibNotice* n;
      if (hdr->type == WS_EV_PROC_EXEC) {
        n = new LibNotice{hdr->type, hdr->tgid, 0, 0, 0, std::string(), hdr->ts_ns};
      } else if (hdr->type == WS_EV_EXEC) {
        const ws_exec_event* xe = static_cast<const ws_exec_event*>(data);
        n = new LibNotice{hdr->type, hdr->tgid, xe->dev, xe->ino, 0, std::string(xe->filename, strnlen(xe->filename, sizeof xe->filename))};
      } else {
        const ws_lib_event* le = static_cast<const ws_lib_event*>(data);
        n = new LibNotice{hdr->type, hdr->tgid, le->dev, le->ino, le->tls_lib, std::string()};
      }
      if (!self->has_lib_tsfn_ || self->lib_tsfn_.NonBlockingCall(n, &Probe::CallLibJs) != napi_ok) {
        self->lib_notices_dropped_ += 1;
        delete n;
      }
      return 0;
    }
    // a connection turning TLS starts a batch: its earlier (ciphertext) data goes out before it,
    // so a consumer applying opens before data never mixes the two byte streams
    if (size >= sizeof(ws_conn_event) && hdr->type == WS_EV_OPEN &&
        (static_cast<const ws_conn_event*>(data)->flags & WS_CONN_F_TLS) && self->cur_.data && self->cur_.len)
      self->Flush();
    if (!self->cur_.data) {
      self->NewBatch();
      if (!self->cur_.data) return 0;
    }
    if (self->cur_.len == 0) self->batch_start_ = std::chrono::steady_clock::now();
    uint32_t len = (uint32_t)size;
    memcpy(self->cur_.data + self->cur_.len, &len, 4);
    memcpy(self->cur_.data + self->cur_.len + 4, data, size);
    size_t padded = (4 + size + 7) & ~size_t(7);
    memset(self->cur_.data + self->cur_.len + 4 + size, 0, padded - 4 - size);
    self->cur_.len += padded;
    self->cur_.events++;
    self->cur_events_ += 1;
    self->events_ += 1;
    // the first connection of a process goes out soon: user space reads /proc/<pid> for it while
    // the process still exists (short-lived clients); the kernel flags it (WS_CONN_F_NEW_PROC), and
    // the later opens of the process wait for their batch like its data
    if (size >= sizeof(ws_conn_event) && hdr->type == WS_EV_OPEN && (static_cast<const ws_conn_event*>(data)->flags & WS_CONN_F_NEW_PROC))
      self->urgent_ = true;
    if (self->cur_.len >= self->batch_bytes_) self->Flush();
    return 0;
  }

  static void CallJs(Napi::Env env, Napi::Function fn, Batch* b) {
    if (b->queued) b->queued->events -= b->events;
    if (env == nullptr || fn == nullptr) {
      b->pool->Give(b->data);
      delete b;
      return;
    }
    auto* owner = new std::shared_ptr<BlockPool>(b->pool);
    Napi::Buffer<uint8_t> buf = Napi::Buffer<uint8_t>::New(
        env, b->data, b->len,
        [](Napi::Env, uint8_t* p, std::shared_ptr<BlockPool>* pool) {
          (*pool)->Give(p);
          delete pool;
        },
        owner);
    delete b;
    // true: JS holds no view into the batch any more; detaching frees the block for reuse now
    Napi::Value done = fn.Call({buf});
    if (done.IsBoolean() && done.As<Napi::Boolean>().Value()) buf.ArrayBuffer().Detach();
  }

  void Flush() {
    if (!cur_.data || cur_.len == 0) return;
    urgent_ = false;
    last_flush_ = std::chrono::steady_clock::now();
    Batch* b = new Batch(cur_);
    b->queued = queued_;
    b->pool = pool_;
    cur_.data = nullptr;
    queued_->events += b->events;
    cur_events_ = 0;
    napi_status st = tsfn_.NonBlockingCall(b, &Probe::CallJs);
    if (st == napi_ok) {
      batches_ += 1;
      bytes_ += b->len;
    } else {
      // JS is behind (queue full) or closing: drop and count, never block.
      queued_->events -= b->events;
      dropped_batches_ += 1;
      dropped_events_ += b->events;
      pool_->Give(b->data);
      delete b;
    }
    NewBatch();
  }

  // A batch holding a process's first connection goes out kUrgentMs after the last batch at the latest, not
  // at once: user space reads /proc/<pid> for the open while the process still exists (a few ms
  // is what short-lived clients leave), and one batch per new connection woke JS once per
  // connection, most of the probe's per-connection cost at hundreds of connections a second.
  static constexpr long kUrgentMs = 5;

  /** ms until the batch must go out (0: now). */
  long Due(std::chrono::steady_clock::time_point now) const {
    auto ms = [](auto d) { return (long)std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
    long due = std::max(0L, batch_ms_ - ms(now - batch_start_));
    if (urgent_) due = std::min(due, std::max(0L, kUrgentMs - ms(now - last_flush_)));
    return due;
  }

  // With traffic the poller drains the ring at least every 10 ms, as the BPF programs wake it only
  // once a batch worth of data waits (see wakeup_bytes). Sleeping longer while traffic flows (until
  // the batch was due, or batch-ms after a flush) let the ring pass 75 % in runs at 15,000-19,000
  // req/s on a loaded machine, shedding connections for ring pressure (docs/benchmarks.md). Only
  // after a round that read nothing, with nothing held, does it sleep batch-ms: an idle probe's
  // poll thread wakes 20 times a second instead of 100, and the first events after a quiet spell
  // are read within batch-ms (at once for a new connection, a shed or a batch worth of data).
  static constexpr long kBusyPollMs = 10;
  int PollTimeout(std::chrono::steady_clock::time_point now, bool quiet) const {
    if (cur_.len) return (int)std::min(Due(now), kBusyPollMs);
    return (int)(quiet ? std::min(batch_ms_, 1000L) : std::min(batch_ms_, kBusyPollMs));
  }

  void Poll() {
    // named, so its wake-ups and CPU can be told apart in /proc/<pid>/task (and are tested)
    pthread_setname_np(pthread_self(), "ws-poll");
    bool quiet = false;
    while (running_) {
      int timeout = PollTimeout(std::chrono::steady_clock::now(), quiet);
      int n = ring_buffer__poll(rb_, timeout);
      if (n < 0 && n != -EINTR) {
        poll_errors_ += 1;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      // epoll reports only rings that signalled; read what arrived without a wakeup too
      int m = ring_buffer__consume(rb_);
      if (m < 0) poll_errors_ += 1;
      quiet = n <= 0 && m <= 0;
      if (cur_.len && Due(std::chrono::steady_clock::now()) == 0) Flush();
    }
    // stopping: what the ring holds now goes out too, in the last batch
    if (ring_buffer__consume(rb_) < 0) poll_errors_ += 1;
    Flush();
  }

  // The entries 0..n-1 of a per-CPU u64 array, each summed over the CPUs (zeros when closed).
  Napi::Array PerCpuSums(Napi::Env env, struct bpf_map* map, uint32_t n) {
    Napi::Array a = Napi::Array::New(env, n);
    int ncpu = libbpf_num_possible_cpus();
    std::vector<uint64_t> vals(ncpu > 0 ? ncpu : 1);
    for (uint32_t i = 0; i < n; i++) {
      uint64_t sum = 0;
      if (skel_ && ncpu > 0 && bpf_map__lookup_elem(map, &i, sizeof i, vals.data(), sizeof(uint64_t) * ncpu, 0) == 0) {
        for (int c = 0; c < ncpu; c++) sum += vals[c];
      }
      a.Set(i, Napi::Number::New(env, (double)sum));
    }
    return a;
  }

  // stats(connections = true): connections false skips the walk of conn_by_fd (a bpf() call per
  // entry), for callers that want only the counters (the overload control, 4 times a second).
  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const bool count_conns = info.Length() < 1 || info[0].ToBoolean().Value();
    Napi::Object r = Napi::Object::New(env);
    r.Set("kernelDrops", PerCpuSums(env, skel_ ? skel_->maps.drops : nullptr, WS_DROP_MAX));
    r.Set("events", Napi::Number::New(env, (double)events_.load()));
    // read in the batch, or queued for JS: events = delivered + dropped + pending at any instant
    // the poller is idle (the two reads are not one atomic snapshot)
    r.Set("pendingEvents", Napi::Number::New(env, (double)(queued_->events.load() + cur_events_.load())));
    r.Set("batches", Napi::Number::New(env, (double)batches_.load()));
    r.Set("bytes", Napi::Number::New(env, (double)bytes_.load()));
    r.Set("droppedBatches", Napi::Number::New(env, (double)dropped_batches_.load()));
    r.Set("droppedEvents", Napi::Number::New(env, (double)dropped_events_.load()));
    r.Set("pollErrors", Napi::Number::New(env, (double)poll_errors_.load()));
    r.Set("attached", Napi::Boolean::New(env, skel_ != nullptr && running_));
    if (skel_ && count_conns) {
      uint32_t n = 0;
      int fd = bpf_map__fd(skel_->maps.conn_by_fd);
      struct ws_fd_key k, next;
      void* prev = nullptr;
      while (bpf_map_get_next_key(fd, prev, &next) == 0 && n < 1000000) {
        k = next;
        prev = &k;
        n++;
      }
      r.Set("connections", Napi::Number::New(env, n));
    }
    return r;
  }

  struct bpf_map* FilterMap(const std::string& kind, size_t* key_size) {
    if (!skel_) return nullptr;
    if (kind == "pid") return *key_size = 4, skel_->maps.filter_pids;
    if (kind == "comm") return *key_size = WS_COMM_LEN, skel_->maps.filter_comms;
    if (kind == "cgroup") return *key_size = 8, skel_->maps.filter_cgroups;
    if (kind == "port") return *key_size = 2, skel_->maps.filter_ports;
    return nullptr;
  }

  // setFilterEntry(kind: "pid"|"comm"|"cgroup"|"port", key: number|bigint|string, action: 0 delete | 1 allow | 2 deny)
  // setCopyPolicy(connKey: bigint, policy?: Uint8Array of one ws_copy_policy): sets the
  // connection's policy (bpf/wirescope.h); without a policy removes it.
  Napi::Value SetCopyPolicy(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bool withPolicy = info.Length() >= 2 && !info[1].IsUndefined();
    if (!skel_ || info.Length() < 1 || !info[0].IsBigInt() ||
        (withPolicy && (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
                        info[1].As<Napi::Uint8Array>().ByteLength() != sizeof(ws_copy_policy)))) {
      probe_error(env, "EINVAL", "setCopyPolicy(connKey: bigint, policy?: Uint8Array of one ws_copy_policy): bad arguments or probe closed").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    bool lossless = true;
    uint64_t key = info[0].As<Napi::BigInt>().Uint64Value(&lossless);
    int fd = bpf_map__fd(skel_->maps.copy_policy);
    // a full table or an already closed connection is not an error: the bytes are then copied
    if (!withPolicy) {
      bpf_map_delete_elem(fd, &key);
      return env.Undefined();
    }
    ws_copy_policy pol;
    memcpy(&pol, info[1].As<Napi::Uint8Array>().Data(), sizeof(pol));
    bpf_map_update_elem(fd, &key, &pol, BPF_ANY);
    return env.Undefined();
  }

  // setCopyPolicies(keys: Uint8Array of little-endian u64 conn_keys, policies: Uint8Array of as
  // many ws_copy_policy): many connections' policies in one bpf() call (BPF_MAP_UPDATE_BATCH)
  // instead of one per connection; the entries the batch did not take (a kernel without batch
  // ops, a full table) are tried one by one.
  Napi::Value SetCopyPolicies(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto isBytes = [](const Napi::Value& v) { return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array; };
    if (!skel_ || info.Length() < 2 || !isBytes(info[0]) || !isBytes(info[1]) || info[0].As<Napi::Uint8Array>().ByteLength() % 8 != 0 ||
        info[1].As<Napi::Uint8Array>().ByteLength() != info[0].As<Napi::Uint8Array>().ByteLength() / 8 * sizeof(ws_copy_policy)) {
      probe_error(env, "EINVAL", "setCopyPolicies(keys: Uint8Array of u64, policies: Uint8Array of as many ws_copy_policy): bad arguments or probe closed").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Uint8Array a = info[0].As<Napi::Uint8Array>();
    const uint32_t n = (uint32_t)(a.ByteLength() / 8);
    if (n == 0) return env.Undefined();
    std::vector<uint64_t> keys(n);
    memcpy(keys.data(), a.Data(), (size_t)n * 8);
    std::vector<ws_copy_policy> vals(n);
    memcpy(vals.data(), info[1].As<Napi::Uint8Array>().Data(), (size_t)n * sizeof(ws_copy_policy));
    int fd = bpf_map__fd(skel_->maps.copy_policy);
    __u32 done = n;
    if (bpf_map_update_batch(fd, keys.data(), vals.data(), &done, nullptr) != 0 || done > n) done = 0;
    // a full table or an already closed connection is not an error: the bytes are then copied
    for (uint32_t i = done; i < n; i++) bpf_map_update_elem(fd, &keys[i], &vals[i], BPF_ANY);
    return env.Undefined();
  }

  // setShedConfig({sampleLevel, ringbufPct, intervalNs, connBytes, connCalls, procBytes, epoch}): the
  // overload policy (bpf/wirescope.h ws_shed_cfg); intervalNs 0 observes everything.
  Napi::Value SetShedConfig(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!skel_ || info.Length() < 1 || !info[0].IsObject()) {
      probe_error(env, "EINVAL", "setShedConfig(config): bad arguments or probe closed").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Object o = info[0].As<Napi::Object>();
    auto num = [&](const char* k) { return o.Get(k).IsNumber() ? o.Get(k).As<Napi::Number>().DoubleValue() : 0.0; };
    struct ws_shed_cfg cfg = {};
    cfg.sample_level = (uint32_t)std::min<double>(WS_SAMPLE_ONE, std::max(0.0, num("sampleLevel")));
    cfg.ringbuf_pct = (uint32_t)num("ringbufPct");
    cfg.interval_ns = (uint64_t)num("intervalNs");
    cfg.conn_bytes = (uint64_t)num("connBytes");
    cfg.conn_calls = (uint64_t)num("connCalls");
    cfg.proc_bytes = (uint64_t)num("procBytes");
    cfg.epoch = (uint32_t)num("epoch");
    uint32_t zero = 0;
    int err = bpf_map__update_elem(skel_->maps.shed_cfg, &zero, 4, &cfg, sizeof cfg, BPF_ANY);
    if (err) probe_error(env, "EMAP", std::string("shed config update failed: ") + strerror(-err)).ThrowAsJavaScriptException();
    return env.Undefined();
  }

  // shedStats(): number[WS_SHED_STATS]: by reason, connections shed, bytes not copied, turns
  // started on shed connections at server ends, then at client ends (bpf/wirescope.h)
  Napi::Value ShedStats(const Napi::CallbackInfo& info) {
    return PerCpuSums(info.Env(), skel_ ? skel_->maps.shed_stats : nullptr, WS_SHED_STATS);
  }

  // shedServed(): the running totals of `shed_served` as a flat array [tgid, port, requests, ...]:
  // requests served while shed, by server process and local port (bpf/wirescope.h)
  Napi::Value ShedServed(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array a = Napi::Array::New(env);
    int ncpu = libbpf_num_possible_cpus();
    if (!skel_ || ncpu <= 0) return a;
    int fd = bpf_map__fd(skel_->maps.shed_served);
    std::vector<uint64_t> vals(ncpu);
    struct ws_shed_served_key k, next;
    void* prev = nullptr;
    uint32_t n = 0;
    while (bpf_map_get_next_key(fd, prev, &next) == 0 && n < 3 * WS_MAX_SHED_SERVED) {
      k = next;
      prev = &k;
      if (bpf_map_lookup_elem(fd, &k, vals.data()) != 0) continue; // evicted in between
      uint64_t sum = 0;
      for (int c = 0; c < ncpu; c++) sum += vals[c];
      a.Set(n++, Napi::Number::New(env, k.tgid));
      a.Set(n++, Napi::Number::New(env, k.port));
      a.Set(n++, Napi::Number::New(env, (double)sum));
    }
    return a;
  }

  // ringFill(): bytes written to the ring and not yet consumed, as a fraction of its size
  Napi::Value RingFill(const Napi::CallbackInfo& info) {
    double f = 0;
    if (ring_cons_ && ring_prod_ && ring_size_) {
      uint64_t c = __atomic_load_n(ring_cons_, __ATOMIC_ACQUIRE);
      uint64_t p = __atomic_load_n(ring_prod_, __ATOMIC_ACQUIRE);
      f = p > c ? (double)(p - c) / ring_size_ : 0;
    }
    return Napi::Number::New(info.Env(), f);
  }

  Napi::Value SetFilterEntry(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    size_t ks = 0;
    struct bpf_map* m = info.Length() >= 3 ? FilterMap(info[0].ToString().Utf8Value(), &ks) : nullptr;
    if (!m) {
      probe_error(env, "EINVAL", "setFilterEntry(kind, key, action): unknown kind or probe closed").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    uint8_t key[WS_COMM_LEN] = {0};
    if (ks == WS_COMM_LEN) {
      std::string s = info[1].ToString().Utf8Value();
      memcpy(key, s.data(), std::min(s.size(), (size_t)WS_COMM_LEN - 1));
    } else if (ks == 8) {
      bool lossless = true; // N-API rejects a null `lossless` with napi_invalid_arg
      uint64_t v = info[1].IsBigInt() ? info[1].As<Napi::BigInt>().Uint64Value(&lossless) : (uint64_t)info[1].ToNumber().Int64Value();
      memcpy(key, &v, 8);
    } else if (ks == 4) {
      uint32_t v = info[1].ToNumber().Uint32Value();
      memcpy(key, &v, 4);
    } else {
      uint16_t v = (uint16_t)info[1].ToNumber().Uint32Value();
      memcpy(key, &v, 2);
    }
    uint8_t action = (uint8_t)info[2].ToNumber().Uint32Value();
    int err = action == 0 ? bpf_map__delete_elem(m, key, ks, 0) : bpf_map__update_elem(m, key, ks, &action, 1, BPF_ANY);
    if (err && !(action == 0 && err == -ENOENT)) {
      probe_error(env, "EMAP", std::string("filter map update failed: ") + strerror(-err)).ThrowAsJavaScriptException();
    }
    return env.Undefined();
  }

  // setFilterConfig({allowPids, allowComms, allowCgroups, allowPorts}: booleans)
  Napi::Value SetFilterConfig(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!skel_ || info.Length() < 1 || !info[0].IsObject()) return env.Undefined();
    Napi::Object o = info[0].As<Napi::Object>();
    struct ws_filter_cfg cfg = {};
    cfg.allow_pids_on = o.Get("allowPids").ToBoolean();
    cfg.allow_comms_on = o.Get("allowComms").ToBoolean();
    cfg.allow_cgroups_on = o.Get("allowCgroups").ToBoolean();
    cfg.allow_ports_on = o.Get("allowPorts").ToBoolean();
    uint32_t zero = 0;
    int err = bpf_map__update_elem(skel_->maps.filter_cfg, &zero, 4, &cfg, sizeof cfg, BPF_ANY);
    if (err) probe_error(env, "EMAP", std::string("filter config update failed: ") + strerror(-err)).ThrowAsJavaScriptException();
    return env.Undefined();
  }

  // setListenPorts(ports: number[]): replaces the set of listening ports used for role inference.
  Napi::Value SetListenPorts(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!skel_ || info.Length() < 1 || !info[0].IsArray()) return env.Undefined();
    int fd = bpf_map__fd(skel_->maps.listen_ports);
    uint16_t k, next;
    std::vector<uint16_t> old;
    void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
      old.push_back(next);
      k = next;
      prev = &k;
    }
    for (uint16_t p : old) bpf_map_delete_elem(fd, &p);
    Napi::Array a = info[0].As<Napi::Array>();
    uint8_t one = 1;
    for (uint32_t i = 0; i < a.Length() && i < WS_MAX_LISTEN_PORTS; i++) {
      uint16_t p = (uint16_t)a.Get(i).ToNumber().Uint32Value();
      bpf_map_update_elem(fd, &p, &one, BPF_ANY);
    }
    return env.Undefined();
  }

  // attach(): the programs a deferAttach construction left out (the skeleton skips those linked
  // already). Idempotent.
  Napi::Value Attach(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!skel_) {
      probe_error(env, "EATTACH", "the probe is closed").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    int err = wirescope_bpf__attach(skel_);
    if (err) probe_error(env, "EATTACH", std::string("attaching the BPF programs failed (") + strerror(-err) + "): " + take_log()).ThrowAsJavaScriptException();
    else skel_->bss->data_attached = 1;
    return env.Undefined();
  }

  Napi::Value Programs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array a = Napi::Array::New(env);
    if (!skel_) return a;
    uint32_t i = 0;
    struct bpf_program* p;
    bpf_object__for_each_program(p, skel_->obj) a.Set(i++, Napi::String::New(env, bpf_program__section_name(p)));
    return a;
  }

  // The uprobes of each TLS library (enum ws_tls_lib), by function name. One set of BPF programs
  // serves them all (the attach cookie carries the library): (object, buffer, length) calls enter
  // by their direction, every return by ssl_return. A library is refused when a required function
  // cannot be probed; the others are used when present (OpenSSL 1.1.0 has no _ex calls).
  struct TlsUprobe {
    const char* func;
    struct bpf_program* prog;
    bool ret;
    bool required;
  };
  std::vector<TlsUprobe> TlsUprobes(uint32_t lib) {
    auto& p = skel_->progs;
    switch (lib) {
      case WS_TLS_OPENSSL:
        return {
            {"SSL_write", p.ssl_write_enter, false, true}, {"SSL_write", p.ssl_return, true, true},
            {"SSL_read", p.ssl_read_enter, false, true}, {"SSL_read", p.ssl_return, true, true},
            {"SSL_write_ex", p.ssl_write_ex_enter, false, false}, {"SSL_write_ex", p.ssl_return, true, false},
            {"SSL_read_ex", p.ssl_read_ex_enter, false, false}, {"SSL_read_ex", p.ssl_return, true, false},
            // SSL_connect and SSL_accept call SSL_do_handshake
            {"SSL_do_handshake", p.ssl_handshake_enter, false, false}, {"SSL_do_handshake", p.ssl_return, true, false},
            {"SSL_free", p.ssl_free_enter, false, false},
        };
      case WS_TLS_GNUTLS:
        // ssize_t gnutls_record_send(session, data, size) is a tail call of gnutls_record_send2
        // (3.6.3+): both are probed, the second entry replaces the first's saved call and the
        // chained return finds it once
        return {
            {"gnutls_record_send", p.ssl_write_enter, false, true}, {"gnutls_record_send", p.ssl_return, true, true},
            {"gnutls_record_recv", p.ssl_read_enter, false, true}, {"gnutls_record_recv", p.ssl_return, true, true},
            {"gnutls_record_send2", p.ssl_write_enter, false, false}, {"gnutls_record_send2", p.ssl_return, true, false},
            {"gnutls_record_recv_seq", p.ssl_read_enter, false, false}, {"gnutls_record_recv_seq", p.ssl_return, true, false},
            {"gnutls_handshake", p.ssl_handshake_enter, false, false}, {"gnutls_handshake", p.ssl_return, true, false},
            {"gnutls_deinit", p.ssl_free_enter, false, false},
        };
      default:
        return {};
    }
  }

  // attachTls(path, dev, ino, lib): uprobes of TLS library `lib` (enum ws_tls_lib) on the file at
  // `path` (for every process that maps it, or runs it: an executable with the library linked in),
  // then (dev, ino) is recorded as known so its mappings are no longer announced (ino 0: an
  // executable, which exec_known remembers).
  // Returns the number of links made; throws EATTACH with libbpf's message when a required
  // function could not be probed (nothing is left attached then).
  Napi::Value AttachTls(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!skel_ || info.Length() < 4 || !info[0].IsString()) {
      probe_error(env, "EINVAL", "attachTls(path, dev, ino, lib): probe closed or bad arguments").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    std::string path = info[0].As<Napi::String>().Utf8Value();
    struct ws_lib_key key = {};
    key.dev = info[1].ToNumber().Uint32Value();
    key.ino = (uint64_t)info[2].ToNumber().Int64Value();
    uint32_t lib = info[3].ToNumber().Uint32Value();
    std::vector<TlsUprobe> specs = TlsUprobes(lib);
    // returns before entries: a call whose entry is seen then has its return seen. (An entry
    // attached first lets a call enter between the two attaches and never return to the
    // programs: its stale in-call state would link the thread's next socket to that object. The
    // node executable is mapped by many processes, each attach takes tens of ms there.)
    std::stable_partition(specs.begin(), specs.end(), [](const TlsUprobe& sp) { return sp.ret; });
    if (specs.empty()) {
      probe_error(env, "EINVAL", "attachTls: unknown TLS library " + std::to_string(lib)).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    // the file is opened once and every uprobe goes through the open file: a path through
    // /proc/<pid>/root vanishes with its process, which must not leave half the calls probed
    int file_fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (file_fd < 0) {
      probe_error(env, "EATTACH", "uprobes on " + path + " failed: " + strerror(errno)).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    std::string file = "/proc/self/fd/" + std::to_string(file_fd);
    take_log();
    std::vector<struct bpf_link*> made;
    std::string failed;
    bool refused = false;
    for (auto& sp : specs) {
      LIBBPF_OPTS(bpf_uprobe_opts, uo, .bpf_cookie = lib, .retprobe = sp.ret, .func_name = sp.func);
      struct bpf_link* l = bpf_program__attach_uprobe_opts(sp.prog, -1, file.c_str(), 0, &uo);
      if (!l) {
        if (sp.required) {
          failed += std::string(failed.empty() ? "" : ", ") + sp.func + (sp.ret ? " (return)" : "") + ": " + strerror(errno);
          refused = true;
        }
        continue;
      }
      made.push_back(l);
    }
    close(file_fd);
    if (refused) {
      DestroyLinks(made);
      probe_error(env, "EATTACH", "uprobes on " + path + " failed: " + failed + " " + take_log()).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    tls_links_.insert(tls_links_.end(), made.begin(), made.end());
    uint8_t one = 1;
    if (key.ino) bpf_map__update_elem(skel_->maps.tls_libs_known, &key, sizeof key, &one, 1, BPF_ANY);
    return Napi::Number::New(env, (double)made.size());
  }

  // markTlsKnown(dev, ino): a library file looked at and not attached (one the probe cannot read):
  // its mappings are no longer announced.
  Napi::Value MarkTlsKnown(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!skel_ || info.Length() < 2) return env.Undefined();
    struct ws_lib_key key = {};
    key.dev = info[0].ToNumber().Uint32Value();
    key.ino = (uint64_t)info[1].ToNumber().Int64Value();
    uint8_t zero = 0;
    bpf_map__update_elem(skel_->maps.tls_libs_known, &key, sizeof key, &zero, 1, BPF_ANY);
    return env.Undefined();
  }

  // attachUprobes(path, [{program, offset, cookie}]): plain uprobes at file offsets of `path` (for
  // every process that maps it), each with its attach cookie; all or none. Returns the links made;
  // throws EATTACH with libbpf's message.
  Napi::Value AttachUprobes(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!skel_ || info.Length() < 2 || !info[0].IsString() || !info[1].IsArray()) {
      probe_error(env, "EINVAL", "attachUprobes(path, probes): probe closed or bad arguments").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    std::string path = info[0].As<Napi::String>().Utf8Value();
    Napi::Array probes = info[1].As<Napi::Array>();
    take_log();
    std::vector<struct bpf_link*> made;
    for (uint32_t i = 0; i < probes.Length(); i++) {
      Napi::Object p = probes.Get(i).As<Napi::Object>();
      std::string name = p.Get("program").ToString().Utf8Value();
      struct bpf_program* prog = bpf_object__find_program_by_name(skel_->obj, name.c_str());
      uint64_t offset = (uint64_t)p.Get("offset").ToNumber().Int64Value();
      LIBBPF_OPTS(bpf_uprobe_opts, uo, .bpf_cookie = (uint64_t)p.Get("cookie").ToNumber().Int64Value());
      struct bpf_link* l = prog ? bpf_program__attach_uprobe_opts(prog, -1, path.c_str(), offset, &uo) : nullptr;
      if (!l) {
        std::string why = prog ? strerror(errno) : "no such program";
        DestroyLinks(made);
        char off[32];
        snprintf(off, sizeof off, "0x%llx", (unsigned long long)offset);
        probe_error(env, "EATTACH", "uprobe " + name + " at " + off + " of " + path + " failed: " + why + " " + take_log()).ThrowAsJavaScriptException();
        return env.Undefined();
      }
      made.push_back(l);
    }
    tls_links_.insert(tls_links_.end(), made.begin(), made.end());
    return Napi::Number::New(env, (double)made.size());
  }

  // setMapEntry(map, key: Buffer, value: Buffer): one update of a map by name; the buffers are laid
  // out by services/probe/src/gen/layout.ts (generated from wirescope.h). Throws EMAP.
  Napi::Value SetMapEntry(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!skel_ || info.Length() < 3 || !info[0].IsString() || !info[1].IsBuffer() || !info[2].IsBuffer()) {
      probe_error(env, "EINVAL", "setMapEntry(map, key, value): probe closed or bad arguments").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    std::string name = info[0].As<Napi::String>().Utf8Value();
    Napi::Buffer<uint8_t> k = info[1].As<Napi::Buffer<uint8_t>>();
    Napi::Buffer<uint8_t> v = info[2].As<Napi::Buffer<uint8_t>>();
    struct bpf_map* m = bpf_object__find_map_by_name(skel_->obj, name.c_str());
    int err = m ? bpf_map__update_elem(m, k.Data(), k.Length(), v.Data(), v.Length(), BPF_ANY) : -ENOENT;
    if (err) probe_error(env, "EMAP", "update of map " + name + " failed: " + strerror(-err)).ThrowAsJavaScriptException();
    return env.Undefined();
  }

  // tlsStats(): {counters: number[] by enum ws_tls_stat, links, noticesDropped}
  Napi::Value TlsStats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object r = Napi::Object::New(env);
    r.Set("counters", PerCpuSums(env, skel_ ? skel_->maps.tls_stats : nullptr, WS_TLS_STAT_MAX));
    r.Set("links", Napi::Number::New(env, (double)tls_links_.size()));
    r.Set("noticesDropped", Napi::Number::New(env, (double)lib_notices_dropped_.load()));
    return r;
  }

  // close([onDrained]): stops the poller and detaches. With a function, true when it will be
  // called once every batch queued to JS has been delivered (false: none can come, no call).
  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (cleanup_hook_) {
      napi_remove_env_cleanup_hook(info.Env(), &Probe::Cleanup, this);
      cleanup_hook_ = false;
    }
    bool later = false;
    if (running_ && drain_ && info.Length() >= 1 && info[0].IsFunction()) {
      drain_->done = Napi::Persistent(info[0].As<Napi::Function>());
      later = true;
    }
    Shutdown();
    return Napi::Boolean::New(info.Env(), later);
  }

  // The batch function's finalizer: runs on the JS thread after the last queued batch, or at the
  // environment's teardown (when JS cannot be called: the call fails and is ignored).
  struct Drain {
    Napi::FunctionReference done;
  };
  static void Drained(Napi::Env, Drain* d) {
    if (!d->done.IsEmpty()) {
      try {
        d->done.Call({});
      } catch (const Napi::Error&) {
        // a throwing callback or a closing environment: nothing to tell
      }
    }
    delete d;
  }

  struct wirescope_bpf* skel_ = nullptr;
  struct ring_buffer* rb_ = nullptr;
  const volatile uint64_t* ring_cons_ = nullptr;
  const volatile uint64_t* ring_prod_ = nullptr;
  uint64_t ring_size_ = 0;
  Napi::ThreadSafeFunction tsfn_;
  Drain* drain_ = nullptr;  // owned by tsfn_'s finalizer once tsfn_ exists
  Napi::ThreadSafeFunction lib_tsfn_;
  bool has_lib_tsfn_ = false;
  std::atomic<uint64_t> lib_notices_dropped_{0};
  std::vector<struct bpf_link*> tls_links_;
  std::thread poller_;
  std::atomic<bool> running_{false};
  bool cleanup_hook_ = false;
  int lock_fd_ = -1;
  int node_lock_fd_ = -1;  // a node's probe: its namespace's own lock
  size_t batch_bytes_ = 1024 * 1024;
  long batch_ms_ = 50;
  bool urgent_ = false;
  Batch cur_{nullptr, 0, 0, nullptr, nullptr};
  std::shared_ptr<BlockPool> pool_;
  std::chrono::steady_clock::time_point batch_start_;
  std::chrono::steady_clock::time_point last_flush_;  // of the last batch handed to JS (or dropped)
  std::shared_ptr<QueueCounter> queued_ = std::make_shared<QueueCounter>();
  std::atomic<uint64_t> cur_events_{0};
  std::atomic<uint64_t> events_{0}, batches_{0}, bytes_{0}, dropped_batches_{0}, dropped_events_{0}, poll_errors_{0};
};

// The local ports of TCP sockets in LISTEN state in this network namespace, asked of the kernel
// through NETLINK_SOCK_DIAG with a LISTEN-only state filter: the kernel then walks its listening
// hash only. Reading /proc/net/tcp instead walks every socket (the established hash, TIME_WAIT
// included: tens of thousands under a new-connection load) and gives JS megabytes to parse.
// Returns -errno on failure (the caller falls back to /proc).
int ListenPortsNetlink(std::vector<uint16_t>& out) {
  int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) return -errno;
  int err = 0;
  for (int family : {AF_INET, AF_INET6}) {
    struct {
      nlmsghdr nlh;
      inet_diag_req_v2 req;
    } msg{};
    msg.nlh.nlmsg_len = sizeof msg;
    msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    msg.req.sdiag_family = (uint8_t)family;
    msg.req.sdiag_protocol = IPPROTO_TCP;
    msg.req.idiag_states = 1u << 10;  // TCP_LISTEN
    if (send(fd, &msg, sizeof msg, 0) < 0) {
      err = -errno;
      break;
    }
    alignas(nlmsghdr) char buf[32768];
    bool done = false;
    while (!done && !err) {
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        err = n < 0 ? -errno : -EIO;
        break;
      }
      int left = (int)n;
      for (nlmsghdr* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
        if (h->nlmsg_type == NLMSG_DONE) {
          done = true;
          break;
        }
        if (h->nlmsg_type == NLMSG_ERROR) {
          const nlmsgerr* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
          // no IPv6 in this kernel: nothing listens there
          if (family == AF_INET6 && (e->error == -ENOENT || e->error == -EAFNOSUPPORT)) done = true;
          else err = e->error ? e->error : -EIO;
          break;
        }
        if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || h->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg))) continue;
        const inet_diag_msg* m = static_cast<const inet_diag_msg*>(NLMSG_DATA(h));
        out.push_back(ntohs(m->id.idiag_sport));
      }
    }
    if (err) break;
  }
  close(fd);
  return err;
}

// listenPorts(): number[] (each port once), or throws with the errno's code.
Napi::Value ListenPorts(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<uint16_t> ports;
  int err = ListenPortsNetlink(ports);
  if (err) {
    probe_error(env, "ENETLINK", std::string("sock_diag: ") + strerror(-err)).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::sort(ports.begin(), ports.end());
  ports.erase(std::unique(ports.begin(), ports.end()), ports.end());
  Napi::Array a = Napi::Array::New(env, ports.size());
  for (size_t i = 0; i < ports.size(); i++) a.Set((uint32_t)i, Napi::Number::New(env, ports[i]));
  return a;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("listenPorts", Napi::Function::New(env, ListenPorts, "listenPorts"));
  return Probe::Init(env, exports);
}

}  // namespace

NODE_API_MODULE(wirescope_probe, Init)
