// kubetun_tun: a Linux TUN device for Node.js, in plain C over N-API.
//
// The fd is non-blocking and watched with uv_poll on the loop thread. Reads are drained in batches of up to
// MAX_BATCH packets, and JS may keep every packet it is given, so the bytes must end up in memory JS owns. Each
// packet is read into a spare block. A large one (a GSO segment of up to 64 KiB) keeps it: the block is shrunk
// to fit and handed over as an external Buffer, so its bytes are copied only once, by the kernel. A small one
// (ACKs, small datagrams) is copied to a scratch area, and the small packets of a batch are copied into one
// fresh Buffer (the "slab") that JS cuts views from. JS receives (slab, larges, count) and a table shared with C.
// Writes go out with one write(2) per packet in a C loop; what the kernel refuses with EAGAIN is copied into a
// queue that is flushed when the fd becomes writable. No packet is dropped without an error event.

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
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_BATCH 128
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

// Event kinds passed to the JS event callback: (kind, errno, count).
#define EV_DRAIN 0
#define EV_WRITE_ERROR 1
#define EV_READ_ERROR 2

// The read area, one per env (loop thread), allocated on first start(). Neither part is ever seen by JS.
typedef struct {
  uint8_t *scratch;  // MAX_BATCH * SMALL_PACKET_MAX: the small packets of the batch being read, back to back
  uint8_t *spare;    // SLOT_SIZE: receives the next read; kept across batches to avoid malloc churn
} addon_data;

typedef struct {
  uint32_t len;
  uint8_t data[];
} queued_packet;

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

static int queue_push(tun_device *t, const uint8_t *data, size_t len) {
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
  queued_packet *p = malloc(sizeof *p + len);
  if (p == NULL) return -1;
  p->len = (uint32_t)len;
  memcpy(p->data, data, len);
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

// Writes one packet; returns 0 when written, the errno otherwise (EAGAIN: try again when writable).
static int write_packet(tun_device *t, const uint8_t *data, size_t len) {
  if (t->inject_eagain > 0) {
    t->inject_eagain--;
    return EAGAIN;
  }
  for (;;) {
    ssize_t n = write(t->fd, data, len);
    if (n >= 0) {
      // A TUN write takes the whole packet or nothing.
      t->packets_out += 1;
      t->bytes_out += (double)len;
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
    int e = write_packet(t, p->data, p->len);
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

static void read_batch(tun_device *t) {
  addon_data *addon = t->addon;
  uint8_t *larges[MAX_BATCH];
  uint32_t large_lens[MAX_BATCH];
  uint32_t count = 0, large_count = 0;
  size_t small_total = 0;
  double bytes = 0;
  int err = 0;
  while (count < MAX_BATCH) {
    if (addon->spare == NULL && (addon->spare = malloc(SLOT_SIZE)) == NULL) {
      err = ENOMEM;
      break;
    }
    // One read(2) into a single buffer: measured cheaper than splitting the read with readv, even with the copy
    // a small packet then takes.
    ssize_t n = read(t->fd, addon->spare, SLOT_SIZE);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) err = errno;
      break;
    }
    if (n == 0) break;
    bytes += (double)n;
    if (n <= SMALL_PACKET_MAX) {
      memcpy(addon->scratch + small_total, addon->spare, (size_t)n);
      small_total += (size_t)n;
      t->ends[count++] = (int32_t)small_total;
      continue;
    }
    uint8_t *block = addon->spare;
    addon->spare = NULL;
    // Shrinking a heap block happens in place and gives the tail back to the allocator; should it fail, the
    // block is still good, only larger than needed.
    uint8_t *fitted = realloc(block, (size_t)n);
    larges[large_count] = fitted != NULL ? fitted : block;
    large_lens[large_count++] = (uint32_t)n;
    t->ends[count++] = LARGE_PACKET;
  }
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

// start(handle, onPackets(slab, larges, count), ends: Int32Array(MAX_BATCH)); see deliver_batch.
static napi_value tun_start(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
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
  addon_data *addon = t->addon;
  if (addon->scratch == NULL) addon->scratch = malloc((size_t)MAX_BATCH * SMALL_PACKET_MAX);
  if (addon->spare == NULL) addon->spare = malloc(SLOT_SIZE);
  if (addon->scratch == NULL || addon->spare == NULL) {
    throw_error(env, "IO", "out of memory for the read area", ENOMEM);
    return NULL;
  }
  NAPI_OK(napi_create_reference(env, argv[1], 1, &t->on_packets));
  NAPI_OK(napi_create_reference(env, argv[2], 1, &t->ends_ref));
  t->ends = data;
  t->reading = 1;
  update_poll(t);
  return NULL;
}

// write(handle, packets: Buffer[]) -> queued bytes, or -(queued bytes) - 1 when some packets failed (see
// takeWriteError). Packets refused with EAGAIN, and every packet after one, go to the queue in order.
static napi_value tun_write(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) {
    throw_type_error(env, "write(handle, packets) takes 2 arguments");
    return NULL;
  }
  tun_device *t = unwrap_open(env, argv[0]);
  if (t == NULL) return NULL;
  uint32_t count = 0;
  if (napi_get_array_length(env, argv[1], &count) != napi_ok) {
    throw_type_error(env, "packets must be an array of Buffers");
    return NULL;
  }
  for (uint32_t i = 0; i < count; i++) {
    napi_value element;
    void *data = NULL;
    size_t len = 0;
    NAPI_OK(napi_get_element(env, argv[1], i, &element));
    if (napi_get_buffer_info(env, element, &data, &len) != napi_ok) {
      throw_type_error(env, "packets must be an array of Buffers");
      return NULL;
    }
    int e = 0;
    if (t->q_len == 0) {
      e = write_packet(t, data, len);
      if (e == 0) continue;
    }
    if (t->q_len > 0 || e == EAGAIN) {
      if (queue_push(t, data, len) != 0) e = ENOMEM;
      else continue;
    }
    t->write_errno = e;
    t->write_errors++;
  }
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
  free(addon->spare);
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
