// kubetun_tun: a Linux TUN device for Node.js, in plain C over N-API.
//
// The fd is non-blocking and watched with uv_poll on the loop thread. Reads are drained in batches of up to
// MAX_BATCH packets, and JS may keep every packet it is given, so the bytes must end up in memory JS owns. Each
// packet is read into a spare block. A large one (a GSO segment of up to 64 KiB) keeps it: the block is shrunk
// to fit and handed over as an external Buffer, so its bytes are copied only once, by the kernel. A small one
// (ACKs, small datagrams) is copied to a scratch area, and the small packets of a batch are copied into one
// fresh Buffer (the "slab") that JS cuts views from. JS receives (slab, larges, count) and a table shared with C.
// Writes go out in order from a C loop; what the kernel refuses with EAGAIN is copied into a queue that is flushed
// when the fd becomes writable. No packet is dropped without an error event.
//
// A packet may be written in two parts, its headers and a tail (write()'s `tails`), which go out as one writev.
// The stack hands a TCP payload over as a view of its send buffer instead of copying it behind the headers, so
// the payload is copied once, by the kernel. The kernel has taken both parts when the call returns, so JS may
// reuse them right away; a packet the kernel refused is copied whole into the queue for the same reason.
//
// Without a vnet header, where the kernel offers io_uring, a read batch is a few submissions of several reads each,
// and a write batch one submission of up to 128 writes: one system call for many packets instead of one per
// packet, which is what a packet costs most without offloads (a read or write of 1.5 kB is mostly the system
// call; ~1.5 us in a VM). TUN handles IOCB_NOWAIT and every request asks for it, so each runs inline, in
// submission order, and a read with nothing queued completes with EAGAIN. Without io_uring (old kernel, seccomp)
// the plain calls are used.

#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/io_uring.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008
#endif

#define MAX_BATCH 128
// Reads submitted together at most; each has a SLOT_SIZE buffer of its own.
#define READ_AHEAD 32
// The first submission of a batch asks for this many reads, later ones for twice what the previous one got.
#define READ_AHEAD_MIN 4
#define RING_ENTRIES MAX_BATCH
// Largest read: a 64 KiB GSO segment plus the 10-byte virtio_net_hdr, with a little room.
#define SLOT_SIZE 65550
#define VNET_HDR_LEN 10
// Packets up to this size are copied into the batch's slab; larger ones are handed over in their own block. An
// external Buffer costs about as much as copying 4-9 kB (measured: copying wins at 3 kB, ties at 9 kB), and a
// small view kept by JS must not pin a 64 KiB block.
#define SMALL_PACKET_MAX 4096
// In the table shared with JS: the packet is in the larges array at its own index, not in the slab.
#define LARGE_PACKET (-1)

#define OPT_VNET_HDR 1
#define OPT_OFFLOAD 2
#define OPT_MULTI_QUEUE 4
// No virtio-net header to carry checksum offload: the addon does the checksum work in C instead of JS (see
// "Checksums" below).
#define OPT_CHECKSUM 8

// Event kinds passed to the JS event callback: (kind, errno, count).
#define EV_DRAIN 0
#define EV_WRITE_ERROR 1
#define EV_READ_ERROR 2

// An io_uring instance used synchronously: every submission is waited for before the call returns, so nothing
// is ever in flight between calls and one ring serves all devices of the env.
typedef struct {
  int fd;  // -1: not set up yet or unavailable (see state)
  int state;  // 0: not tried, 1: usable, -1: unavailable (plain system calls)
  unsigned *sq_tail, *sq_head, *sq_mask, *sq_array;
  unsigned *cq_head, *cq_tail, *cq_mask;
  struct io_uring_sqe *sqes;
  struct io_uring_cqe *cqes;
  void *sq_map, *cq_map;
  size_t sq_map_len, cq_map_len, sqes_len;
} uring;

// The read area, one per env (loop thread), allocated on first start(). Neither part is ever seen by JS.
typedef struct {
  uint8_t *scratch;  // MAX_BATCH * SMALL_PACKET_MAX: the small packets of the batch being read, back to back
  uint8_t *slots[READ_AHEAD];  // SLOT_SIZE each: receive the next reads; kept across batches (no malloc churn)
  uring ring;
} addon_data;

typedef struct {
  uint32_t len;
  uint8_t data[];
} queued_packet;

// A packet to write: part[0] (packets[i]), then part[1] (tails[i]) unless its length is 0. The array of these
// lives in tun_write's frame, so the ring's WRITEV requests can point at `part` directly.
typedef struct {
  struct iovec part[2];
} out_packet;

static size_t out_len(const out_packet *p) { return p->part[0].iov_len + p->part[1].iov_len; }

typedef struct {
  napi_env env;
  addon_data *addon;
  int fd;
  int reading;
  int watching;  // the uv events currently requested
  int poll_closed;
  int finalized;
  uv_poll_t poll;
  napi_ref on_packets;
  napi_ref on_event;
  napi_ref ends_ref;
  int32_t *ends;  // per packet of a batch: its end offset in the slab, or LARGE_PACKET
  napi_ref checked_ref;
  uint8_t *checked;  // with OPT_CHECKSUM, per packet of a batch: 1 when its TCP/UDP checksum was verified
  int checksum;      // OPT_CHECKSUM
  int batching;      // reads and writes go through the ring (no vnet header; see write_chunk)
  napi_async_context async_context;
  napi_async_cleanup_hook_handle cleanup_hook;
  // Write queue: a ring of copies of the packets the kernel refused with EAGAIN.
  queued_packet **queue;
  size_t q_head, q_len, q_cap;
  double q_bytes;
  double packets_in, bytes_in, packets_out, bytes_out;
  // Write errors found during a write() call, handed to JS by takeWriteError().
  int write_errno;
  uint32_t write_errors;
  // For tests: this many write attempts fail with EAGAIN, since a TUN write practically never does.
  uint32_t inject_eagain;
  // Reads the next submission asks for (READ_AHEAD_MIN..READ_AHEAD), following how full the queue was.
  uint32_t read_ahead;
} tun_device;

// ---------------------------------------------------------------------------------------------------------------
// Errors

static void throw_error(napi_env env, const char *code, const char *message, int err) {
  napi_value code_value, message_value, error, errno_value;
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_value);
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &message_value);
  napi_create_error(env, code_value, message_value, &error);
  napi_create_int32(env, err, &errno_value);
  napi_set_named_property(env, error, "errno", errno_value);
  napi_throw(env, error);
}

static void throw_type_error(napi_env env, const char *message) { napi_throw_type_error(env, NULL, message); }

#define NAPI_OK(call)                                   \
  do {                                                  \
    if ((call) != napi_ok) {                            \
      bool pending_;                                    \
      napi_is_exception_pending(env, &pending_);        \
      if (!pending_) throw_type_error(env, #call " failed"); \
      return NULL;                                      \
    }                                                   \
  } while (0)

// Calls a JS function from a libuv callback with the device's async context, so that promise jobs and
// nextTicks run after it, and turns an exception thrown by it into an uncaught exception instead of losing it.
static void call_js(tun_device *t, napi_ref fn_ref, size_t argc, const napi_value *argv) {
  napi_env env = t->env;
  napi_value fn, recv;
  if (fn_ref == NULL || napi_get_reference_value(env, fn_ref, &fn) != napi_ok || fn == NULL) return;
  // napi_make_callback needs an object as the receiver; the callbacks do not use `this`.
  napi_get_global(env, &recv);
  napi_status status = napi_make_callback(env, t->async_context, recv, fn, argc, argv, NULL);
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (status != napi_ok || pending) {
    napi_value exception;
    if (pending && napi_get_and_clear_last_exception(env, &exception) == napi_ok) {
      napi_fatal_exception(env, exception);
    }
  }
}

static void emit_event(tun_device *t, int kind, int err, uint32_t count) {
  napi_value argv[3];
  napi_create_int32(t->env, kind, &argv[0]);
  napi_create_int32(t->env, err, &argv[1]);
  napi_create_uint32(t->env, count, &argv[2]);
  call_js(t, t->on_event, 3, argv);
}

// ---------------------------------------------------------------------------------------------------------------
// Write queue

// Copies the packet: JS may reuse its buffers as soon as write() returns.
static int queue_push(tun_device *t, const out_packet *packet) {
  if (t->q_len == t->q_cap) {
    size_t cap = t->q_cap ? t->q_cap * 2 : 64;
    queued_packet **ring = malloc(cap * sizeof *ring);
    if (ring == NULL) return -1;
    for (size_t i = 0; i < t->q_len; i++) ring[i] = t->queue[(t->q_head + i) % t->q_cap];
    free(t->queue);
    t->queue = ring;
    t->q_head = 0;
    t->q_cap = cap;
  }
  size_t len = out_len(packet);
  queued_packet *p = malloc(sizeof *p + len);
  if (p == NULL) return -1;
  p->len = (uint32_t)len;
  memcpy(p->data, packet->part[0].iov_base, packet->part[0].iov_len);
  if (packet->part[1].iov_len > 0) {
    memcpy(p->data + packet->part[0].iov_len, packet->part[1].iov_base, packet->part[1].iov_len);
  }
  t->queue[(t->q_head + t->q_len) % t->q_cap] = p;
  t->q_len++;
  t->q_bytes += (double)len;
  return 0;
}

static void queue_pop(tun_device *t) {
  queued_packet *p = t->queue[t->q_head];
  t->q_bytes -= p->len;
  free(p);
  t->q_head = (t->q_head + 1) % t->q_cap;
  t->q_len--;
}

static void queue_free(tun_device *t) {
  while (t->q_len > 0) queue_pop(t);
  free(t->queue);
  t->queue = NULL;
  t->q_cap = t->q_head = 0;
  t->q_bytes = 0;
}

// ---------------------------------------------------------------------------------------------------------------
// Checksums (OPT_CHECKSUM): the TCP/UDP checksums JS would otherwise compute per packet, in bulk here. On read, a
// packet whose transport checksum is right is marked (JS then skips its own check; one that is wrong is left
// unmarked and JS finds and counts it). On write, the TCP/UDP checksum field is filled in (what the kernel does
// for a virtio-net header's NEEDS_CSUM). IPv4 fragments and IPv6 packets with extension headers are left alone.

// The ones' complement sum of the bytes, 8 at a time in host order with end-around carry (RFC 1071 §2: the
// sum is independent of byte order and word size, once folded). An odd tail is padded with zero.
static uint64_t csum_add(uint64_t sum, const uint8_t *p, size_t n) {
  uint64_t w;
  for (; n >= 8; p += 8, n -= 8) {
    memcpy(&w, p, 8);
    sum += w;
    sum += sum < w;
  }
  if (n > 0) {
    w = 0;
    memcpy(&w, p, n);
    sum += w;
    sum += sum < w;
  }
  return sum;
}

// Folded to 16 bits, in the byte order of the memory it was summed from.
static uint16_t csum_fold(uint64_t sum) {
  sum = (sum & 0xffffffffu) + (sum >> 32);
  sum = (sum & 0xffffffffu) + (sum >> 32);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)sum;
}

// Finds the TCP or UDP segment of an IP packet: sets *start and *len and returns the protocol (6 or 17) and the
// pseudo-header sum in *pseudo, or returns 0 when the packet is anything else or malformed.
static int transport_of(const uint8_t *p, size_t n, size_t *start, size_t *len, uint64_t *pseudo) {
  uint8_t header[40];
  if (n >= 20 && p[0] >> 4 == 4) {
    size_t ihl = (size_t)(p[0] & 0x0f) * 4;
    size_t total = (size_t)p[2] << 8 | p[3];
    int fragment = ((p[6] & 0x3f) | p[7]) != 0;
    if (ihl < 20 || total < ihl || total > n || fragment) return 0;
    memcpy(header, p + 12, 8);
    header[8] = 0;
    header[9] = p[9];
    header[10] = (uint8_t)((total - ihl) >> 8);
    header[11] = (uint8_t)(total - ihl);
    *start = ihl;
    *len = total - ihl;
    *pseudo = csum_add(0, header, 12);
    return p[9] == 6 || p[9] == 17 ? p[9] : 0;
  }
  if (n >= 40 && p[0] >> 4 == 6) {
    size_t payload = (size_t)p[4] << 8 | p[5];
    if (40 + payload > n) return 0;
    memcpy(header, p + 8, 32);
    header[32] = 0;
    header[33] = 0;
    header[34] = (uint8_t)(payload >> 8);
    header[35] = (uint8_t)payload;
    header[36] = 0;
    header[37] = 0;
    header[38] = 0;
    header[39] = p[6];
    *start = 40;
    *len = payload;
    *pseudo = csum_add(0, header, 40);
    return p[6] == 6 || p[6] == 17 ? p[6] : 0;
  }
  return 0;
}

static int checksum_ok(const uint8_t *p, size_t n) {
  size_t start, len;
  uint64_t pseudo;
  int protocol = transport_of(p, n, &start, &len, &pseudo);
  if (protocol == 0 || len < (protocol == 6 ? 20u : 8u)) return 0;
  // An IPv4 UDP datagram without a checksum (zero) is left to JS, which knows what to make of it.
  if (protocol == 17 && p[start + 6] == 0 && p[start + 7] == 0) return 0;
  return csum_fold(csum_add(pseudo, p + start, len)) == 0xffff;
}

// Whether the first n bytes hold all of the IP header, which is what transport_of reads (of the rest it only
// needs the length).
static int ip_header_in(const uint8_t *p, size_t n) {
  if (n == 0) return 0;
  if (p[0] >> 4 == 4) return n >= 20 && n >= (size_t)(p[0] & 0x0f) * 4;
  return p[0] >> 4 != 6 || n >= 40;
}

// Fills in the TCP/UDP checksum of the packet head + tail (tail_len 0: no tail). Returns -1, with the packet left
// as it was, when the head does not hold the IP header and the checksum field: the sum has nowhere to go then.
static int checksum_fill(uint8_t *head, size_t head_len, const uint8_t *tail, size_t tail_len) {
  if (tail_len > 0 && !ip_header_in(head, head_len)) return -1;
  size_t start, len;
  uint64_t pseudo;
  int protocol = transport_of(head, head_len + tail_len, &start, &len, &pseudo);
  size_t at = protocol == 6 ? 16 : 6;
  if (protocol == 0 || len < at + 2) return 0;
  if (start + at + 2 > head_len) return -1;
  head[start + at] = 0;
  head[start + at + 1] = 0;
  size_t in_head = head_len - start < len ? head_len - start : len;
  uint64_t sum = csum_add(pseudo, head + start, in_head);
  if (in_head < len) {
    uint16_t rest = csum_fold(csum_add(0, tail, len - in_head));
    // Behind an odd number of head bytes each tail byte is in the other half of its 16-bit word, which turns
    // the tail's sum by 8 bits (RFC 1071 §2(B)): the tail is still summed in place, not copied.
    if (in_head & 1) rest = (uint16_t)(rest << 8 | rest >> 8);
    sum += rest;
    sum += sum < rest;
  }
  uint16_t folded = (uint16_t)~csum_fold(sum);
  // UDP sends a computed zero as all ones (RFC 768); zero means "no checksum".
  if (protocol == 17 && folded == 0) folded = 0xffff;
  memcpy(head + start + at, &folded, 2);
  return 0;
}

// ---------------------------------------------------------------------------------------------------------------
// io_uring, used synchronously (no liburing: the three system calls and the ring layout are all it takes)

static void ring_close(uring *r) {
  if (r->sqes != NULL) munmap(r->sqes, r->sqes_len);
  if (r->cq_map != NULL && r->cq_map != r->sq_map) munmap(r->cq_map, r->cq_map_len);
  if (r->sq_map != NULL) munmap(r->sq_map, r->sq_map_len);
  if (r->fd >= 0) close(r->fd);
  memset(r, 0, sizeof *r);
  r->fd = -1;
  r->state = -1;
}

// Sets the ring up on first use; returns whether it is usable. SUBMIT_ALL (Linux 5.18) is required: without it
// a request that fails early would leave the ones after it in the submission queue, pointing at memory that is
// gone by the next call.
static int ring_ready(uring *r) {
  if (r->state != 0) return r->state > 0;
  r->fd = -1;
  r->state = -1;
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  p.flags = IORING_SETUP_SUBMIT_ALL;
  int fd = (int)syscall(__NR_io_uring_setup, RING_ENTRIES, &p);
  if (fd < 0) return 0;
  r->fd = fd;
  r->sq_map_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  r->cq_map_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
  int single = (p.features & IORING_FEAT_SINGLE_MMAP) != 0;
  if (single && r->cq_map_len > r->sq_map_len) r->sq_map_len = r->cq_map_len;
  r->sq_map = mmap(NULL, r->sq_map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
  if (r->sq_map == MAP_FAILED) r->sq_map = NULL;
  if (r->sq_map != NULL) {
    r->cq_map = single ? r->sq_map
                       : mmap(NULL, r->cq_map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                              IORING_OFF_CQ_RING);
    if (r->cq_map == MAP_FAILED) r->cq_map = NULL;
  }
  r->sqes_len = p.sq_entries * sizeof(struct io_uring_sqe);
  if (r->cq_map != NULL) {
    r->sqes = mmap(NULL, r->sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
    if (r->sqes == MAP_FAILED) r->sqes = NULL;
  }
  if (r->sqes == NULL || p.sq_entries < RING_ENTRIES || p.cq_entries < RING_ENTRIES) {
    ring_close(r);
    return 0;
  }
  uint8_t *sq = r->sq_map, *cq = r->cq_map;
  r->sq_head = (unsigned *)(sq + p.sq_off.head);
  r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
  r->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
  r->sq_array = (unsigned *)(sq + p.sq_off.array);
  r->cq_head = (unsigned *)(cq + p.cq_off.head);
  r->cq_tail = (unsigned *)(cq + p.cq_off.tail);
  r->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
  r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
  r->state = 1;
  return 1;
}

// Queues a read or write of buf[0..len) on fd as request `index` (for IORING_OP_WRITEV: of the len iovecs at buf).
static void ring_prep(uring *r, unsigned index, uint8_t opcode, int fd, const void *buf, uint32_t len) {
  unsigned tail = *r->sq_tail + index;
  unsigned slot = tail & *r->sq_mask;
  struct io_uring_sqe *sqe = &r->sqes[slot];
  memset(sqe, 0, sizeof *sqe);
  sqe->opcode = opcode;
  sqe->fd = fd;
  sqe->addr = (uint64_t)(uintptr_t)buf;
  sqe->len = len;
  sqe->off = (uint64_t)-1;  // the file position, which a character device ignores
  // Without RWF_NOWAIT a read would wait for a packet (io_uring ignores O_NONBLOCK on files that handle
  // IOCB_NOWAIT); with it, it completes with EAGAIN like a non-blocking read(2).
  sqe->rw_flags = RWF_NOWAIT;
  sqe->user_data = index;
  r->sq_array[slot] = slot;
}

// Submits the `count` prepared requests and waits for all of them; res[i] is request i's result (bytes or
// -errno). Should io_uring_enter fail, the ring is closed for good and res[i] is -ECANCELED for each request that
// did not complete: those the kernel had not taken never run.
static void ring_run(uring *r, unsigned count, int32_t *res) {
  for (unsigned i = 0; i < count; i++) res[i] = -ECANCELED;
  __atomic_store_n(r->sq_tail, *r->sq_tail + count, __ATOMIC_RELEASE);
  unsigned done = 0;
  while (done < count) {
    unsigned unsubmitted = *r->sq_tail - __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE);
    unsigned head = *r->cq_head, tail = __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE);
    if (head == tail) {
      long n = syscall(__NR_io_uring_enter, r->fd, unsubmitted, count - done, IORING_ENTER_GETEVENTS, NULL, 0);
      if (n < 0 && errno != EINTR && errno != EAGAIN && errno != EBUSY) {
        ring_close(r);
        return;
      }
      continue;
    }
    for (; head != tail; head++) {
      const struct io_uring_cqe *cqe = &r->cqes[head & *r->cq_mask];
      if (cqe->user_data < count) res[cqe->user_data] = cqe->res;
      done++;
    }
    __atomic_store_n(r->cq_head, head, __ATOMIC_RELEASE);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Polling

static void on_poll(uv_poll_t *handle, int status, int events);

static void update_poll(tun_device *t) {
  if (t->fd < 0) return;
  int events = (t->reading ? UV_READABLE : 0) | (t->q_len > 0 ? UV_WRITABLE : 0);
  if (events == t->watching) return;
  if (events != 0) {
    uv_poll_start(&t->poll, events, on_poll);
  } else {
    uv_poll_stop(&t->poll);
  }
  t->watching = events;
}

// Writes one packet made of `parts` pieces; returns 0 when written, the errno otherwise (EAGAIN: try again when
// writable).
static int write_packet(tun_device *t, const struct iovec *part, int parts) {
  if (t->inject_eagain > 0) {
    t->inject_eagain--;
    return EAGAIN;
  }
  for (;;) {
    ssize_t n = writev(t->fd, part, parts);
    if (n >= 0) {
      // A TUN write takes the whole packet or nothing.
      t->packets_out += 1;
      t->bytes_out += (double)n;
      return 0;
    }
    if (errno != EINTR) return errno;
  }
}

static void flush_queue(tun_device *t) {
  int err = 0;
  uint32_t errors = 0;
  while (t->q_len > 0) {
    queued_packet *p = t->queue[t->q_head];
    struct iovec whole = {p->data, p->len};
    int e = write_packet(t, &whole, 1);
    if (e == EAGAIN) break;
    if (e != 0) {
      err = e;
      errors++;
    }
    queue_pop(t);
  }
  update_poll(t);
  if (errors > 0) emit_event(t, EV_WRITE_ERROR, err, errors);
  if (t->q_len == 0 && t->fd >= 0) emit_event(t, EV_DRAIN, 0, 0);
}

static void free_packet(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

// Calls onPackets(slab | null, larges | null, count): the slab holds the small packets back to back, larges has
// each large packet at its index in the batch; t->ends says which is which. Returns an errno when the batch
// could not be handed over (it is lost then).
static int deliver_batch(tun_device *t, uint32_t count, size_t small_total, uint8_t **larges,
                         const uint32_t *large_lens, uint32_t large_count) {
  napi_env env = t->env;
  napi_value argv[3];
  napi_get_null(env, &argv[0]);
  napi_get_null(env, &argv[1]);
  uint32_t handed = 0;  // the larges whose blocks now belong to Node
  bool ok = true;
  if (large_count > 0) {
    ok = napi_create_array_with_length(env, count, &argv[1]) == napi_ok;
    for (uint32_t i = 0; ok && i < count; i++) {
      if (t->ends[i] != LARGE_PACKET) continue;
      napi_value buffer;
      // Once asked to wrap a block, Node may own it even on failure (it frees it when the array buffer is
      // collected), so it is counted as handed over either way.
      ok = napi_create_external_buffer(env, large_lens[handed], larges[handed], free_packet, NULL, &buffer) ==
           napi_ok;
      handed++;
      ok = ok && napi_set_element(env, argv[1], i, buffer) == napi_ok;
    }
  }
  if (ok && small_total > 0) {
    void *copy;
    ok = napi_create_buffer_copy(env, small_total, t->addon->scratch, &copy, &argv[0]) == napi_ok;
  }
  while (handed < large_count) free(larges[handed++]);
  if (!ok) {
    // Out of memory: the batch is lost, which the caller reports as a read error event.
    napi_value exception;
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) napi_get_and_clear_last_exception(env, &exception);
    return ENOMEM;
  }
  napi_create_uint32(env, count, &argv[2]);
  call_js(t, t->on_packets, 3, argv);
  return 0;
}

// Reads up to `want` packets into the slots; res[i] is read i's result (bytes or -errno). Returns how many
// results there are: all `want` through the ring, up to and including the first failure with plain reads.
static uint32_t read_slots(tun_device *t, uint32_t want, int32_t *res) {
  addon_data *addon = t->addon;
  if (t->batching && addon->ring.state > 0) {
    for (uint32_t i = 0; i < want; i++) ring_prep(&addon->ring, i, IORING_OP_READ, t->fd, addon->slots[i], SLOT_SIZE);
    // Should the ring break, the reads it did not run are ECANCELED: the batch ends there, and the next wakeup
    // reads the rest with plain calls.
    ring_run(&addon->ring, want, res);
    return want;
  }
  for (uint32_t i = 0; i < want; i++) {
    ssize_t n;
    do n = read(t->fd, addon->slots[i], SLOT_SIZE);
    while (n < 0 && errno == EINTR);
    res[i] = n < 0 ? -errno : (int32_t)n;
    if (n <= 0) return i + 1;
  }
  return want;
}

static void read_batch(tun_device *t) {
  addon_data *addon = t->addon;
  uint8_t *larges[MAX_BATCH];
  uint32_t large_lens[MAX_BATCH];
  int32_t res[READ_AHEAD];
  uint32_t count = 0, large_count = 0;
  size_t small_total = 0;
  double bytes = 0;
  int err = 0;
  int drained = 0;
  uint32_t want = t->read_ahead < READ_AHEAD_MIN ? READ_AHEAD_MIN : t->read_ahead;
  // Plain reads go one at a time into the first slot, which stays warm in the cache.
  int ring = t->batching && ring_ready(&addon->ring);
  while (count < MAX_BATCH && !drained && err == 0) {
    if (want > MAX_BATCH - count) want = MAX_BATCH - count;
    if (want > READ_AHEAD) want = READ_AHEAD;
    if (!ring) want = 1;
    uint32_t ready = 0;
    while (ready < want && (addon->slots[ready] != NULL || (addon->slots[ready] = malloc(SLOT_SIZE)) != NULL)) ready++;
    if (ready == 0) {
      err = ENOMEM;
      break;
    }
    uint32_t results = read_slots(t, ready, res);
    uint32_t got = 0;
    for (uint32_t i = 0; i < results; i++) {
      int32_t n = res[i];
      if (n <= 0) {
        // EAGAIN (or end of file): the queue was empty when this read ran. Later reads of the same submission may
        // still have found packets that arrived since, which are taken in order all the same.
        drained = 1;
        if (n < 0 && n != -EAGAIN && n != -EINTR && n != -ECANCELED) err = -n;
        continue;
      }
      got++;
      bytes += (double)n;
      if (t->checked != NULL) t->checked[count] = (uint8_t)checksum_ok(addon->slots[i], (size_t)n);
      if (n <= SMALL_PACKET_MAX) {
        memcpy(addon->scratch + small_total, addon->slots[i], (size_t)n);
        small_total += (size_t)n;
        t->ends[count++] = (int32_t)small_total;
        continue;
      }
      uint8_t *block = addon->slots[i];
      addon->slots[i] = NULL;
      // Shrinking a heap block happens in place and gives the tail back to the allocator; should it fail, the
      // block is still good, only larger than needed.
      uint8_t *fitted = realloc(block, (size_t)n);
      larges[large_count] = fitted != NULL ? fitted : block;
      large_lens[large_count++] = (uint32_t)n;
      t->ends[count++] = LARGE_PACKET;
    }
    // Ask for what the queue seems to hold: twice what this submission found, so a full queue is taken in a few
    // submissions and an idle one costs few reads that find nothing.
    want = got * 2;
    if (want < READ_AHEAD_MIN) want = READ_AHEAD_MIN;
  }
  t->read_ahead = want > READ_AHEAD ? READ_AHEAD : want;
  if (count > 0) {
    t->packets_in += count;
    t->bytes_in += bytes;
    int e = deliver_batch(t, count, small_total, larges, large_lens, large_count);
    if (e != 0) err = e;
  }
  if (err != 0 && t->fd >= 0) {
    // A read error (the device was deleted: EBADFD) would repeat on every loop turn: stop reading.
    t->reading = 0;
    update_poll(t);
    emit_event(t, EV_READ_ERROR, err, 0);
  }
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  tun_device *t = handle->data;
  if (t->fd < 0) return;
  napi_handle_scope scope;
  if (napi_open_handle_scope(t->env, &scope) != napi_ok) return;
  if (status < 0) {
    t->reading = 0;
    update_poll(t);
    emit_event(t, EV_READ_ERROR, -status, 0);
  } else {
    if ((events & UV_WRITABLE) && t->q_len > 0) flush_queue(t);
    if ((events & UV_READABLE) && t->fd >= 0 && t->reading) read_batch(t);
  }
  napi_close_handle_scope(t->env, scope);
}

// ---------------------------------------------------------------------------------------------------------------
// Lifetime: the struct lives until both the JS handle is finalized and the uv handle is closed.

static void maybe_free(tun_device *t) {
  if (t->finalized && t->poll_closed) free(t);
}

static void delete_ref(napi_env env, napi_ref *ref) {
  if (*ref != NULL) {
    napi_delete_reference(env, *ref);
    *ref = NULL;
  }
}

static void on_poll_closed(uv_handle_t *handle) {
  tun_device *t = handle->data;
  t->poll_closed = 1;
  if (t->cleanup_hook != NULL) {
    napi_remove_async_cleanup_hook(t->cleanup_hook);
    t->cleanup_hook = NULL;
  }
  maybe_free(t);
}

static void device_close(tun_device *t) {
  if (t->fd < 0) return;
  t->reading = 0;
  if (t->watching) uv_poll_stop(&t->poll);
  t->watching = 0;
  uv_close((uv_handle_t *)&t->poll, on_poll_closed);
  close(t->fd);
  t->fd = -1;
  queue_free(t);
  delete_ref(t->env, &t->on_packets);
  delete_ref(t->env, &t->on_event);
  delete_ref(t->env, &t->ends_ref);
  t->ends = NULL;
  delete_ref(t->env, &t->checked_ref);
  t->checked = NULL;
  if (t->async_context != NULL) {
    napi_async_destroy(t->env, t->async_context);
    t->async_context = NULL;
  }
}

static void on_env_teardown(napi_async_cleanup_hook_handle handle, void *arg) {
  tun_device *t = arg;
  (void)handle;
  // on_poll_closed removes the hook, which lets the environment finish tearing down.
  device_close(t);
}

static void on_finalize(napi_env env, void *data, void *hint) {
  tun_device *t = data;
  (void)env;
  (void)hint;
  t->finalized = 1;
  device_close(t);
  maybe_free(t);
}

// ---------------------------------------------------------------------------------------------------------------
// open(name, netns | null, options, onEvent) -> handle { name }

// The kernel's dev_valid_name(): 1..15 bytes, not "." or "..", no '/', ':' or whitespace.
static int valid_ifname(const char *name, size_t len) {
  if (len == 0 || len >= IFNAMSIZ) return 0;
  if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) return 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)name[i];
    if (c == '/' || c == ':' || c <= ' ' || c == 0x7f) return 0;
  }
  return 1;
}

static int valid_netns_name(const char *name, size_t len) {
  if (len == 0 || len > 200) return 0;
  if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) return 0;
  return strchr(name, '/') == NULL;
}

// Whether a link with this name exists in the calling thread's network namespace.
static int link_exists(const char *name) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return 0;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  int exists = ioctl(s, SIOCGIFINDEX, &ifr) == 0;
  close(s);
  return exists;
}

typedef struct {
  const char *code;
  char message[512];
  int err;
} open_failure;

static int create_tun(const char *name, int options, char *actual_name, const char *netns, open_failure *fail) {
  const char *where = netns ? " in network namespace " : "";
  const char *ns = netns ? netns : "";
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    fail->err = errno;
    if (errno == ENOENT || errno == ENODEV || errno == ENXIO) {
      fail->code = "NO_TUN_DEVICE";
      snprintf(fail->message, sizeof fail->message,
               "cannot open /dev/net/tun (%s): load the tun module (modprobe tun) or create /dev/net/tun "
               "(mkdir -p /dev/net && mknod /dev/net/tun c 10 200)",
               strerror(errno));
    } else if (errno == EPERM || errno == EACCES) {
      fail->code = "PERMISSION";
      snprintf(fail->message, sizeof fail->message,
               "cannot open /dev/net/tun (%s): creating a TUN device needs root or CAP_NET_ADMIN", strerror(errno));
    } else {
      fail->code = "IO";
      snprintf(fail->message, sizeof fail->message, "cannot open /dev/net/tun: %s", strerror(errno));
    }
    return -1;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  if (options & OPT_VNET_HDR) ifr.ifr_flags |= IFF_VNET_HDR;
  // A multi-queue device may be opened again by name to add a queue; otherwise an existing name is an error
  // (IFF_TUN_EXCL), rather than silently attaching to someone else's persistent device.
  ifr.ifr_flags |= (options & OPT_MULTI_QUEUE) ? IFF_MULTI_QUEUE : IFF_TUN_EXCL;
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    fail->err = e;
    if (e == EPERM || e == EACCES) {
      fail->code = "PERMISSION";
      snprintf(fail->message, sizeof fail->message,
               "creating TUN device %s%s%s needs root or CAP_NET_ADMIN (%s)", name, where, ns, strerror(e));
    } else if (e == EBUSY || ((e == EINVAL || e == EEXIST) && link_exists(name))) {
      fail->code = "NAME_TAKEN";
      snprintf(fail->message, sizeof fail->message,
               "a device named %s already exists%s%s: pick another name or delete it (ip link del %s)", name,
               where, ns, name);
    } else if (e == EINVAL || e == ENFILE) {
      fail->code = "BAD_NAME";
      snprintf(fail->message, sizeof fail->message, "the kernel refused the device name \"%s\" (%s)", name,
               strerror(e));
    } else {
      fail->code = "IO";
      snprintf(fail->message, sizeof fail->message, "TUNSETIFF %s failed: %s", name, strerror(e));
    }
    close(fd);
    return -1;
  }
  if (options & OPT_VNET_HDR) {
    int size = VNET_HDR_LEN;
    if (ioctl(fd, TUNSETVNETHDRSZ, &size) < 0) {
      fail->err = errno;
      fail->code = "IO";
      snprintf(fail->message, sizeof fail->message, "TUNSETVNETHDRSZ on %s failed: %s", name, strerror(errno));
      close(fd);
      return -1;
    }
    if (options & OPT_OFFLOAD) {
      unsigned int offloads = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
      if (ioctl(fd, TUNSETOFFLOAD, offloads) < 0) {
        fail->err = errno;
        fail->code = "IO";
        snprintf(fail->message, sizeof fail->message, "TUNSETOFFLOAD on %s failed: %s", name, strerror(errno));
        close(fd);
        return -1;
      }
    }
  }
  memcpy(actual_name, ifr.ifr_name, IFNAMSIZ);
  actual_name[IFNAMSIZ - 1] = '\0';
  return fd;
}

// Creates the device with the calling thread moved into the named network namespace for the duration: the
// socket behind the fd belongs to the namespace it was opened in, so the device stays there afterwards.
static int create_tun_in_netns(const char *name, int options, char *actual_name, const char *netns,
                               open_failure *fail) {
  char path[sizeof "/var/run/netns/" + 256];
  snprintf(path, sizeof path, "/var/run/netns/%.255s", netns);
  int target = open(path, O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    fail->err = errno;
    fail->code = (errno == EACCES || errno == EPERM) ? "PERMISSION" : "NETNS";
    snprintf(fail->message, sizeof fail->message,
             "network namespace %.200s not found in /var/run/netns (%s); create it with ip netns add", netns,
             strerror(errno));
    return -1;
  }
  int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (home < 0) {
    fail->err = errno;
    fail->code = "IO";
    snprintf(fail->message, sizeof fail->message, "cannot open /proc/thread-self/ns/net: %s", strerror(errno));
    close(target);
    return -1;
  }
  if (setns(target, CLONE_NEWNET) < 0) {
    fail->err = errno;
    fail->code = (errno == EPERM) ? "PERMISSION" : "NETNS";
    snprintf(fail->message, sizeof fail->message,
             errno == EPERM ? "entering network namespace %s needs root or CAP_SYS_ADMIN (%s)"
                            : "%s is not a usable network namespace (%s)",
             netns, strerror(errno));
    close(target);
    close(home);
    return -1;
  }
  int fd = create_tun(name, options, actual_name, netns, fail);
  if (setns(home, CLONE_NEWNET) < 0) {
    // Going on in the wrong namespace would send the process's traffic to the wrong place.
    napi_fatal_error("kubetun_tun", NAPI_AUTO_LENGTH, "cannot return to the original network namespace",
                     NAPI_AUTO_LENGTH);
  }
  close(target);
  close(home);
  return fd;
}

static napi_value tun_open(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) {
    throw_type_error(env, "open(name, netns, options, onEvent) takes 4 arguments");
    return NULL;
  }
  char name[64];
  size_t name_len = 0;
  if (napi_get_value_string_utf8(env, argv[0], name, sizeof name, &name_len) != napi_ok) {
    throw_type_error(env, "name must be a string");
    return NULL;
  }
  if (!valid_ifname(name, name_len)) {
    char message[256];
    snprintf(message, sizeof message,
             "invalid device name \"%.40s%s\": use 1 to 15 characters without '/', ':' or whitespace", name,
             name_len > 40 ? "..." : "");
    throw_error(env, "BAD_NAME", message, EINVAL);
    return NULL;
  }
  char netns[256];
  size_t netns_len = 0;
  int with_netns = 0;
  napi_valuetype type;
  NAPI_OK(napi_typeof(env, argv[1], &type));
  if (type == napi_string) {
    NAPI_OK(napi_get_value_string_utf8(env, argv[1], netns, sizeof netns, &netns_len));
    if (!valid_netns_name(netns, netns_len)) {
      throw_error(env, "NETNS", "invalid network namespace name: use a plain name as given to ip netns add", EINVAL);
      return NULL;
    }
    with_netns = 1;
  } else if (type != napi_null && type != napi_undefined) {
    throw_type_error(env, "netns must be a string or null");
    return NULL;
  }
  int32_t options = 0;
  NAPI_OK(napi_get_value_int32(env, argv[2], &options));
  NAPI_OK(napi_typeof(env, argv[3], &type));
  if (type != napi_function) {
    throw_type_error(env, "onEvent must be a function");
    return NULL;
  }

  // The JS side of the handle first: once the fd exists, nothing below may fail without closing it.
  napi_value handle, resource_name, name_value;
  NAPI_OK(napi_create_object(env, &handle));
  NAPI_OK(napi_create_string_utf8(env, "kubetun:TunDevice", NAPI_AUTO_LENGTH, &resource_name));
  void *addon = NULL;
  uv_loop_t *loop = NULL;
  NAPI_OK(napi_get_instance_data(env, &addon));
  NAPI_OK(napi_get_uv_event_loop(env, &loop));
  tun_device *t = calloc(1, sizeof *t);
  if (t == NULL) {
    throw_error(env, "IO", "out of memory", ENOMEM);
    return NULL;
  }

  open_failure fail = {0};
  char actual_name[IFNAMSIZ];
  int fd = with_netns ? create_tun_in_netns(name, options, actual_name, netns, &fail)
                      : create_tun(name, options, actual_name, NULL, &fail);
  if (fd < 0) {
    free(t);
    throw_error(env, fail.code, fail.message, fail.err);
    return NULL;
  }
  if (uv_poll_init(loop, &t->poll, fd) != 0) {
    free(t);
    close(fd);
    throw_error(env, "IO", "uv_poll_init failed on the TUN fd", EIO);
    return NULL;
  }
  t->env = env;
  t->addon = addon;
  t->fd = fd;
  t->checksum = (options & (OPT_CHECKSUM | OPT_VNET_HDR)) == OPT_CHECKSUM;
  // With a vnet header the packets are GSO segments of up to 64 KiB, few per batch: plain calls measured faster.
  t->batching = (options & OPT_VNET_HDR) == 0;
  t->poll.data = t;
  napi_status status = napi_wrap(env, handle, t, on_finalize, NULL, NULL);
  // Without a wrapper there is no finalizer to wait for: the struct goes when the uv handle is closed.
  if (status != napi_ok) t->finalized = 1;
  if (status == napi_ok) status = napi_create_reference(env, argv[3], 1, &t->on_event);
  if (status == napi_ok) status = napi_async_init(env, handle, resource_name, &t->async_context);
  if (status == napi_ok) status = napi_create_string_utf8(env, actual_name, NAPI_AUTO_LENGTH, &name_value);
  if (status == napi_ok) status = napi_set_named_property(env, handle, "name", name_value);
  if (status != napi_ok) {
    // The wrapper (if made) finalizes the struct; device_close releases the fd and the uv handle.
    device_close(t);
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) throw_error(env, "IO", "cannot set up the TUN handle", EIO);
    return NULL;
  }
  napi_add_async_cleanup_hook(env, on_env_teardown, t, &t->cleanup_hook);
  return handle;
}

static tun_device *unwrap(napi_env env, napi_value handle) {
  void *data = NULL;
  if (napi_unwrap(env, handle, &data) != napi_ok || data == NULL) {
    throw_type_error(env, "not a TUN handle");
    return NULL;
  }
  return data;
}

static tun_device *unwrap_open(napi_env env, napi_value handle) {
  tun_device *t = unwrap(env, handle);
  if (t != NULL && t->fd < 0) {
    throw_error(env, "IO", "the TUN device is closed", EBADF);
    return NULL;
  }
  return t;
}

// start(handle, onPackets(slab, larges, count), ends: Int32Array(MAX_BATCH), checked: Uint8Array(MAX_BATCH) on an
// OPT_CHECKSUM device); see deliver_batch.
static napi_value tun_start(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) {
    throw_type_error(env, "start(handle, onPackets, ends) takes 3 arguments");
    return NULL;
  }
  tun_device *t = unwrap_open(env, argv[0]);
  if (t == NULL) return NULL;
  if (t->on_packets != NULL) {
    throw_error(env, "IO", "the TUN device is already started", EALREADY);
    return NULL;
  }
  napi_valuetype type;
  NAPI_OK(napi_typeof(env, argv[1], &type));
  bool is_typed_array = false;
  NAPI_OK(napi_is_typedarray(env, argv[2], &is_typed_array));
  napi_typedarray_type array_type;
  size_t length = 0;
  void *data = NULL;
  if (is_typed_array) NAPI_OK(napi_get_typedarray_info(env, argv[2], &array_type, &length, &data, NULL, NULL));
  if (type != napi_function || !is_typed_array || array_type != napi_int32_array || length < MAX_BATCH) {
    throw_type_error(env, "start needs a function and an Int32Array of at least 128 entries");
    return NULL;
  }
  void *checked = NULL;
  if (t->checksum) {
    is_typed_array = false;
    length = 0;
    if (argc >= 4) NAPI_OK(napi_is_typedarray(env, argv[3], &is_typed_array));
    if (is_typed_array) NAPI_OK(napi_get_typedarray_info(env, argv[3], &array_type, &length, &checked, NULL, NULL));
    if (!is_typed_array || array_type != napi_uint8_array || length < MAX_BATCH) {
      throw_type_error(env, "start on a checksum device needs a Uint8Array of at least 128 entries");
      return NULL;
    }
  }
  addon_data *addon = t->addon;
  if (addon->scratch == NULL) addon->scratch = malloc((size_t)MAX_BATCH * SMALL_PACKET_MAX);
  if (addon->slots[0] == NULL) addon->slots[0] = malloc(SLOT_SIZE);
  if (addon->scratch == NULL || addon->slots[0] == NULL) {
    throw_error(env, "IO", "out of memory for the read area", ENOMEM);
    return NULL;
  }
  NAPI_OK(napi_create_reference(env, argv[1], 1, &t->on_packets));
  NAPI_OK(napi_create_reference(env, argv[2], 1, &t->ends_ref));
  t->ends = data;
  if (checked != NULL) {
    NAPI_OK(napi_create_reference(env, argv[3], 1, &t->checked_ref));
    t->checked = checked;
  }
  t->reading = 1;
  update_poll(t);
  return NULL;
}

// A packet that could not be written (errno e): queued on EAGAIN, to go out when the fd is writable; counted as
// a write error otherwise (see takeWriteError).
static void write_failed(tun_device *t, const out_packet *p, int e) {
  if (e == EAGAIN) {
    if (queue_push(t, p) == 0) return;
    e = ENOMEM;
  }
  t->write_errno = e;
  t->write_errors++;
}

// Writes one packet, or queues it behind the packets already waiting so that the order is kept.
static void write_one(tun_device *t, const out_packet *p) {
  if (t->q_len > 0) {
    write_failed(t, p, EAGAIN);
    return;
  }
  int e = write_packet(t, p->part, p->part[1].iov_len > 0 ? 2 : 1);
  if (e != 0) write_failed(t, p, e);
}

// Writes (or queues) packets in order, through the ring when the device batches (no vnet header: packets of at
// most an MTU, where the system call is most of what a write costs) and there is no queue to keep behind.
// The requests are not linked: the ring issues them inline one after the other, in order, and a link would add
// a task-work round trip per packet (measured: 1.7x the time). So a packet refused with EAGAIN, which a TUN write
// practically never is, is queued after the ones that followed it in the same submission.
static void write_chunk(tun_device *t, const out_packet *packets, uint32_t n) {
  uring *r = &t->addon->ring;
  uint32_t i = 0;
  if (n > 1 && t->batching && t->q_len == 0 && t->inject_eagain == 0 && ring_ready(r)) {
    int32_t res[RING_ENTRIES];
    for (uint32_t k = 0; k < n; k++) {
      const out_packet *p = &packets[k];
      if (p->part[1].iov_len > 0) {
        ring_prep(r, k, IORING_OP_WRITEV, t->fd, p->part, 2);
      } else {
        ring_prep(r, k, IORING_OP_WRITE, t->fd, p->part[0].iov_base, (uint32_t)p->part[0].iov_len);
      }
    }
    ring_run(r, n, res);
    // ECANCELED: the ring broke before running it; it takes the plain path below with the rest.
    for (; i < n && res[i] != -ECANCELED; i++) {
      if (res[i] < 0) {
        write_failed(t, &packets[i], -res[i]);
        continue;
      }
      t->packets_out += 1;
      t->bytes_out += (double)out_len(&packets[i]);
    }
  }
  for (; i < n; i++) write_one(t, &packets[i]);
}

// tails[i] as a tail: a Buffer (an empty one is no tail), null or undefined. Returns 0 when it is anything else.
static int tail_of(napi_env env, napi_value tails, uint32_t i, void **data, size_t *len) {
  napi_value element;
  napi_valuetype type;
  if (napi_get_element(env, tails, i, &element) != napi_ok || napi_typeof(env, element, &type) != napi_ok) return 0;
  if (type == napi_null || type == napi_undefined) return 1;
  return napi_get_buffer_info(env, element, data, len) == napi_ok;
}

// write(handle, packets: Buffer[], tails?: Array<Buffer | null | undefined>) -> queued bytes, or -(queued bytes) - 1
// when some packets failed (see takeWriteError). Packet i is packets[i] followed by tails[i] (see the top of the
// file); tails, when given, is as long as packets. Packets refused with EAGAIN, and every packet after one, go to
// the queue in order (within one ring submission, see write_chunk).
static napi_value tun_write(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) {
    throw_type_error(env, "write(handle, packets, tails?) takes 2 or 3 arguments");
    return NULL;
  }
  tun_device *t = unwrap_open(env, argv[0]);
  if (t == NULL) return NULL;
  uint32_t count = 0;
  if (napi_get_array_length(env, argv[1], &count) != napi_ok) {
    throw_type_error(env, "packets must be an array of Buffers");
    return NULL;
  }
  napi_value tails = NULL;
  if (argc >= 3) {
    napi_valuetype type;
    NAPI_OK(napi_typeof(env, argv[2], &type));
    uint32_t tail_count = 0;
    if (type != napi_undefined &&
        (napi_get_array_length(env, argv[2], &tail_count) != napi_ok || tail_count != count)) {
      throw_type_error(env, "tails must be an array as long as packets");
      return NULL;
    }
    if (type != napi_undefined) tails = argv[2];
  }
  out_packet packets[RING_ENTRIES];
  uint32_t gathered = 0;
  for (uint32_t i = 0; i < count; i++) {
    napi_value element;
    void *data = NULL, *tail = NULL;
    size_t len = 0, tail_len = 0;
    const char *bad = NULL;
    if (napi_get_element(env, argv[1], i, &element) != napi_ok ||
        napi_get_buffer_info(env, element, &data, &len) != napi_ok) {
      bad = "packets must be an array of Buffers";
    } else if (tails != NULL && !tail_of(env, tails, i, &tail, &tail_len)) {
      bad = "tails must hold Buffers, null or undefined";
    } else if (len > UINT32_MAX || tail_len > UINT32_MAX - len) {
      bad = "a packet and its tail must be less than 4 GiB";
    } else if (t->checksum && checksum_fill(data, len, tail, tail_len) != 0) {
      bad = "with the checksum option, a packet with a tail must have its IP header and TCP/UDP checksum field in "
            "packets[i]";
    }
    if (bad != NULL) {
      // The packets before it go out (or are queued) as they would have without it.
      write_chunk(t, packets, gathered);
      update_poll(t);
      throw_type_error(env, bad);
      return NULL;
    }
    out_packet *p = &packets[gathered++];
    p->part[0] = (struct iovec){data, len};
    p->part[1] = (struct iovec){tail, tail_len};
    if (gathered == RING_ENTRIES) {
      write_chunk(t, packets, gathered);
      gathered = 0;
    }
  }
  write_chunk(t, packets, gathered);
  update_poll(t);
  double queued = t->q_bytes;
  napi_value result;
  NAPI_OK(napi_create_double(env, t->write_errors > 0 ? -queued - 1 : queued, &result));
  return result;
}

// takeWriteError(handle) -> [errno, count] of the packets write() could not send since the last call.
static napi_value tun_take_write_error(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  tun_device *t = unwrap(env, argv[0]);
  if (t == NULL) return NULL;
  napi_value result, err, count;
  NAPI_OK(napi_create_array_with_length(env, 2, &result));
  NAPI_OK(napi_create_int32(env, t->write_errno, &err));
  NAPI_OK(napi_create_uint32(env, t->write_errors, &count));
  NAPI_OK(napi_set_element(env, result, 0, err));
  NAPI_OK(napi_set_element(env, result, 1, count));
  t->write_errno = 0;
  t->write_errors = 0;
  return result;
}

// stats(handle, out: Float64Array(5)): packetsIn, bytesIn, packetsOut, bytesOut, queuedOut.
static napi_value tun_stats(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  tun_device *t = unwrap(env, argv[0]);
  if (t == NULL) return NULL;
  bool is_typed_array = false;
  napi_typedarray_type array_type;
  size_t length = 0;
  void *data = NULL;
  NAPI_OK(napi_is_typedarray(env, argv[1], &is_typed_array));
  if (is_typed_array) NAPI_OK(napi_get_typedarray_info(env, argv[1], &array_type, &length, &data, NULL, NULL));
  if (!is_typed_array || array_type != napi_float64_array || length < 5) {
    throw_type_error(env, "stats needs a Float64Array of 5 entries");
    return NULL;
  }
  double *out = data;
  out[0] = t->packets_in;
  out[1] = t->bytes_in;
  out[2] = t->packets_out;
  out[3] = t->bytes_out;
  out[4] = (double)t->q_len;
  return NULL;
}

// injectWriteEagain(handle, count): the next `count` write attempts act as if the kernel said EAGAIN (tests).
static napi_value tun_inject_write_eagain(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  tun_device *t = unwrap_open(env, argv[0]);
  if (t == NULL) return NULL;
  NAPI_OK(napi_get_value_uint32(env, argv[1], &t->inject_eagain));
  return NULL;
}

static napi_value tun_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  tun_device *t = unwrap(env, argv[0]);
  if (t == NULL) return NULL;
  device_close(t);
  return NULL;
}

static void free_addon(napi_env env, void *data, void *hint) {
  addon_data *addon = data;
  (void)env;
  (void)hint;
  free(addon->scratch);
  for (int i = 0; i < READ_AHEAD; i++) free(addon->slots[i]);
  if (addon->ring.state > 0) ring_close(&addon->ring);
  free(addon);
}

NAPI_MODULE_INIT() {
  addon_data *addon = calloc(1, sizeof *addon);
  if (addon == NULL || napi_set_instance_data(env, addon, free_addon, NULL) != napi_ok) {
    free(addon);
    napi_throw_error(env, NULL, "kubetun_tun: cannot set up the addon");
    return NULL;
  }
  napi_property_descriptor props[] = {
      {"open", NULL, tun_open, NULL, NULL, NULL, napi_default, NULL},
      {"start", NULL, tun_start, NULL, NULL, NULL, napi_default, NULL},
      {"write", NULL, tun_write, NULL, NULL, NULL, napi_default, NULL},
      {"takeWriteError", NULL, tun_take_write_error, NULL, NULL, NULL, napi_default, NULL},
      {"stats", NULL, tun_stats, NULL, NULL, NULL, napi_default, NULL},
      {"injectWriteEagain", NULL, tun_inject_write_eagain, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, tun_close, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_value constants, batch, vnet;
  napi_create_object(env, &constants);
  napi_create_uint32(env, MAX_BATCH, &batch);
  napi_create_uint32(env, VNET_HDR_LEN, &vnet);
  napi_set_named_property(env, constants, "MAX_BATCH", batch);
  napi_set_named_property(env, constants, "VNET_HDR_LEN", vnet);
  napi_set_named_property(env, exports, "constants", constants);
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}
