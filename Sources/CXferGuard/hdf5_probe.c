// The HDF5 probe: libhdf5 walks an untrusted file in a child process first.
//
// libhdf5 1.10 can segfault, abort (glibc heap checks), divide by zero, loop forever (a damaged
// global heap behind a variable-length string) or allocate without bound on crafted files. A
// signal handler can catch some of that, not a hang nor an abort from inside malloc. So before
// xfer's own process touches a file with libhdf5, a forked child opens it and reads everything
// the readers above will read — every link, every object header, every attribute value, every
// dataset's type, shape and storage, the data of chunked and compact datasets — under a memory
// limit (RLIMIT_AS), a processor-time limit (RLIMIT_CPU: a looping libhdf5 uses it up, while a
// loaded machine only slows a healthy walk down) and, for a child that stops without using the
// processor, a wall-clock limit of six times that kept by the parent. Only if the child finishes cleanly
// does the parent open the file; libhdf5 is deterministic, so the same reads then terminate.
//
// The child also enforces what xfer accepts of a file, things libhdf5 would happily follow:
// no external links, soft links or user-defined links, no external raw storage, no virtual
// datasets (each would read bytes from another file into the model), no dataset that declares
// more elements than it stores (never written, or contiguous data past the end of the file),
// no dataspace whose byte size overflows.
//
// Cost: a fork and a metadata walk; contiguous data (how Keras stores weights) is not read, only
// its extent checked, so a 553 MB VGG16 probes in milliseconds.

#define _GNU_SOURCE
#include "xfer_guard.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include <hdf5.h>

typedef struct {
    int fd;                 /* the pipe to the parent */
    uint64_t file_size;
    char failure[1024];     /* first refusal, sent to the parent */
} probe_ctx;

/* Bytes a single read of the child may take at once; larger datasets are read in slabs. */
#define PROBE_SLAB_BYTES ((size_t)16 << 20)
/* Attributes live in object headers (64 KiB) or dense storage; anything larger is not Keras's. */
#define PROBE_ATTRIBUTE_BYTES ((uint64_t)256 << 20)

static void refuse(probe_ctx *ctx, const char *fmt, ...) {
    if (ctx->failure[0]) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->failure, sizeof ctx->failure, fmt, ap);
    va_end(ap);
}

/* The innermost description on libhdf5's error stack. */
static herr_t innermost(unsigned n, const H5E_error2_t *e, void *data) {
    char *out = data;
    if (n == 0 && e && e->desc) snprintf(out, 256, "%s", e->desc);
    return 0;
}

static void refuse_hdf5(probe_ctx *ctx, const char *object, const char *what) {
    char why[256] = "";
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost, why);
    H5Eclear2(H5E_DEFAULT);
    if (why[0]) refuse(ctx, "%s: %s (%s)", object, what, why);
    else refuse(ctx, "%s: %s", object, what);
}

static int mul_ok(uint64_t a, uint64_t b, uint64_t *out) {
    if (a != 0 && b > UINT64_MAX / a) return 0;
    *out = a * b;
    return 1;
}

/* Element count of a dataspace, 0 on overflow or error (reported). */
static int space_points(probe_ctx *ctx, hid_t space, const char *object, uint64_t *points, int *rank_out, hsize_t *dims) {
    H5S_class_t kind = H5Sget_simple_extent_type(space);
    if (kind == H5S_NULL) { *points = 0; *rank_out = 0; return 1; }
    if (kind == H5S_SCALAR) { *points = 1; *rank_out = 0; return 1; }
    if (kind != H5S_SIMPLE) { refuse_hdf5(ctx, object, "has an unreadable dataspace"); return 0; }
    int rank = H5Sget_simple_extent_ndims(space);
    if (rank < 0 || rank > H5S_MAX_RANK) { refuse_hdf5(ctx, object, "has an unreadable dataspace"); return 0; }
    if (H5Sget_simple_extent_dims(space, dims, NULL) < 0) { refuse_hdf5(ctx, object, "has an unreadable dataspace"); return 0; }
    uint64_t n = 1;
    for (int i = 0; i < rank; i++) {
        if (!mul_ok(n, dims[i], &n)) { refuse(ctx, "%s: declares a shape whose element count overflows", object); return 0; }
    }
    *points = n;
    *rank_out = rank;
    return 1;
}

/* Reads an attribute's value the way the Swift readers do. */
static herr_t check_attribute(hid_t loc, const char *name, const H5A_info_t *info, void *data) {
    (void)info;
    probe_ctx *ctx = data;
    char object[600];
    snprintf(object, sizeof object, "attribute '%.500s'", name);
    hid_t attr = H5Aopen(loc, name, H5P_DEFAULT);
    if (attr < 0) { refuse_hdf5(ctx, object, "cannot be opened"); return -1; }
    int ok = 1;
    hid_t type = H5Aget_type(attr), space = H5Aget_space(attr);
    if (type < 0 || space < 0) { refuse_hdf5(ctx, object, "has an unreadable type or shape"); ok = 0; }
    uint64_t points = 0, bytes = 0;
    int rank = 0;
    hsize_t dims[H5S_MAX_RANK];
    if (ok) ok = space_points(ctx, space, object, &points, &rank, dims);
    if (ok && points > 0) {
        H5T_class_t cls = H5Tget_class(type);
        size_t size = H5Tget_size(type);
        if (cls == H5T_STRING && H5Tis_variable_str(type) > 0) {
            if (!mul_ok(points, sizeof(char *), &bytes) || bytes > PROBE_ATTRIBUTE_BYTES) {
                refuse(ctx, "%s: declares %llu strings", object, (unsigned long long)points); ok = 0;
            } else {
                hid_t mem = H5Tcopy(H5T_C_S1);
                H5Tset_size(mem, H5T_VARIABLE);
                H5Tset_cset(mem, H5Tget_cset(type));
                char **strings = calloc((size_t)points, sizeof(char *));
                if (!strings) { refuse(ctx, "%s: too large to read", object); ok = 0; }
                else if (H5Aread(attr, mem, strings) < 0) { refuse_hdf5(ctx, object, "cannot be read"); ok = 0; }
                else {
                    size_t total = 0;
                    for (uint64_t i = 0; i < points; i++) if (strings[i]) total += strlen(strings[i]);
                    (void)total;
                    H5Dvlen_reclaim(mem, space, H5P_DEFAULT, strings);
                }
                free(strings);
                H5Tclose(mem);
            }
        } else if (cls == H5T_STRING || cls == H5T_INTEGER || cls == H5T_FLOAT) {
            hid_t mem = cls == H5T_STRING ? H5Tcopy(type) : H5Tcopy(H5T_NATIVE_DOUBLE);
            size_t elem = cls == H5T_STRING ? size : sizeof(double);
            if (size == 0 || !mul_ok(points, elem, &bytes) || bytes > PROBE_ATTRIBUTE_BYTES) {
                refuse(ctx, "%s: declares an impossible size", object); ok = 0;
            } else {
                void *buf = malloc((size_t)bytes);
                if (!buf) { refuse(ctx, "%s: too large to read", object); ok = 0; }
                else if (H5Aread(attr, mem, buf) < 0) { refuse_hdf5(ctx, object, "cannot be read"); ok = 0; }
                free(buf);
            }
            H5Tclose(mem);
        }
        /* Other classes (compound, reference, ...) are never read by xfer. */
    }
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    H5Aclose(attr);
    return ok ? 0 : -1;
}

static int check_attributes(probe_ctx *ctx, hid_t obj, const char *object) {
    hsize_t idx = 0;
    if (H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, check_attribute, ctx) < 0) {
        if (!ctx->failure[0]) refuse_hdf5(ctx, object, "has attributes that cannot be read");
        return 0;
    }
    return 1;
}

/* Reads a dataset's data in bounded slabs along its first axis. */
static int read_all(probe_ctx *ctx, hid_t ds, hid_t type, int rank, const hsize_t *dims, uint64_t points, const char *object) {
    H5T_class_t cls = H5Tget_class(type);
    hid_t mem;
    if (cls == H5T_INTEGER || cls == H5T_FLOAT) mem = H5Tcopy(H5T_NATIVE_FLOAT);
    else if (cls == H5T_STRING && H5Tis_variable_str(type) <= 0) mem = H5Tcopy(type);
    else return 1; /* xfer reads numbers (and fixed strings) only */
    size_t elem = H5Tget_size(mem);
    int ok = 1;
    if (rank == 0) {
        void *buf = malloc(elem);
        if (!buf || H5Dread(ds, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) { refuse_hdf5(ctx, object, "its data cannot be read"); ok = 0; }
        free(buf);
        H5Tclose(mem);
        return ok;
    }
    uint64_t row = points / (dims[0] ? dims[0] : 1), row_bytes;
    if (!mul_ok(row, elem, &row_bytes)) { H5Tclose(mem); refuse(ctx, "%s: declares an impossible size", object); return 0; }
    uint64_t rows_per = row_bytes ? PROBE_SLAB_BYTES / row_bytes : dims[0];
    if (rows_per == 0) rows_per = 1;
    uint64_t slab_bytes;
    if (!mul_ok(rows_per, row_bytes, &slab_bytes)) slab_bytes = UINT64_MAX;
    void *buf = malloc(slab_bytes > 0 ? (size_t)slab_bytes : 1);
    hid_t fspace = H5Dget_space(ds);
    if (!buf || fspace < 0) { refuse(ctx, "%s: too large to read", object); ok = 0; }
    hsize_t start[H5S_MAX_RANK] = {0}, count[H5S_MAX_RANK];
    for (int i = 0; i < rank; i++) count[i] = dims[i];
    for (uint64_t first = 0; ok && first < dims[0]; first += rows_per) {
        start[0] = first;
        count[0] = dims[0] - first < rows_per ? dims[0] - first : rows_per;
        hid_t mspace = H5Screate_simple(rank, count, NULL);
        if (H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
            H5Dread(ds, mem, mspace, fspace, H5P_DEFAULT, buf) < 0) {
            refuse_hdf5(ctx, object, "its data cannot be read (the file is damaged)"); ok = 0;
        }
        H5Sclose(mspace);
    }
    if (fspace >= 0) H5Sclose(fspace);
    free(buf);
    H5Tclose(mem);
    return ok;
}

static int check_dataset(probe_ctx *ctx, hid_t ds, const char *object) {
    int ok = 1;
    hid_t type = H5Dget_type(ds), space = H5Dget_space(ds), dcpl = H5Dget_create_plist(ds);
    if (type < 0 || space < 0 || dcpl < 0) { refuse_hdf5(ctx, object, "has an unreadable type, shape or layout"); ok = 0; }
    uint64_t points = 0, bytes = 0;
    int rank = 0;
    hsize_t dims[H5S_MAX_RANK];
    size_t elem = ok ? H5Tget_size(type) : 0;
    if (ok && elem == 0) { refuse_hdf5(ctx, object, "has an unreadable element type"); ok = 0; }
    if (ok) ok = space_points(ctx, space, object, &points, &rank, dims);
    if (ok && !mul_ok(points, elem, &bytes)) { refuse(ctx, "%s: declares a byte size that overflows", object); ok = 0; }
    H5D_layout_t layout = ok ? H5Pget_layout(dcpl) : H5D_LAYOUT_ERROR;
    if (ok && H5Pget_external_count(dcpl) > 0) {
        refuse(ctx, "%s: keeps its data in another file (HDF5 external storage); xfer reads only the file it is given", object); ok = 0;
    }
    if (ok && layout == H5D_VIRTUAL) {
        refuse(ctx, "%s: is a virtual dataset (its data comes from other files); xfer reads only the file it is given", object); ok = 0;
    }
    if (ok && layout == H5D_LAYOUT_ERROR) { refuse_hdf5(ctx, object, "has an unreadable storage layout"); ok = 0; }
    if (ok && points > 0 && layout == H5D_CHUNKED) {
        /* libhdf5 1.10 reports a compressed dataset as partly allocated (it compares compressed
           bytes with the raw size), so count the chunks instead: every chunk must be stored. */
        hsize_t chunk[H5S_MAX_RANK];
        hsize_t stored = 0;
        uint64_t expected = 1;
        if (H5Pget_chunk(dcpl, H5S_MAX_RANK, chunk) != rank || H5Dget_num_chunks(ds, space, &stored) < 0) {
            refuse_hdf5(ctx, object, "has unreadable chunk storage"); ok = 0;
        } else {
            for (int i = 0; i < rank && ok; i++) {
                if (chunk[i] == 0) { refuse(ctx, "%s: has a chunk of size 0", object); ok = 0; break; }
                if (!mul_ok(expected, (dims[i] + chunk[i] - 1) / chunk[i], &expected)) expected = UINT64_MAX;
            }
            if (ok && stored < expected) {
                refuse(ctx, "%s: declares %llu values but stores only %llu of its %llu chunks (it was never fully written)", object,
                       (unsigned long long)points, (unsigned long long)stored, (unsigned long long)expected);
                ok = 0;
            }
        }
    } else if (ok && points > 0) {
        H5D_space_status_t status;
        if (H5Dget_space_status(ds, &status) < 0) { refuse_hdf5(ctx, object, "has unreadable storage"); ok = 0; }
        else if (status != H5D_SPACE_STATUS_ALLOCATED) {
            refuse(ctx, "%s: declares %llu values but stores %s of them (it was never fully written)", object,
                   (unsigned long long)points, status == H5D_SPACE_STATUS_NOT_ALLOCATED ? "none" : "only some");
            ok = 0;
        }
    }
    if (ok && points > 0 && layout == H5D_CONTIGUOUS) {
        haddr_t offset = H5Dget_offset(ds);
        hsize_t stored = H5Dget_storage_size(ds);
        if (H5Pget_nfilters(dcpl) > 0) { refuse(ctx, "%s: a contiguous dataset with filters", object); ok = 0; }
        else if (offset == HADDR_UNDEF || stored < bytes) {
            refuse(ctx, "%s: declares %llu bytes of data but stores %llu", object, (unsigned long long)bytes, (unsigned long long)stored); ok = 0;
        } else if (offset > ctx->file_size || bytes > ctx->file_size - offset) {
            refuse(ctx, "%s: its %llu bytes of data lie beyond the end of the file (%llu bytes); the file is truncated", object,
                   (unsigned long long)bytes, (unsigned long long)ctx->file_size); ok = 0;
        }
    } else if (ok && points > 0) {
        /* Chunked (maybe compressed) or compact: libhdf5 decodes these, so read them here. */
        ok = read_all(ctx, ds, type, rank, dims, points, object);
    }
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    return ok;
}

static herr_t check_link(hid_t group, const char *name, const H5L_info_t *info, void *data) {
    probe_ctx *ctx = data;
    char object[600];
    snprintf(object, sizeof object, "/%.590s", name);
    if (info->type == H5L_TYPE_EXTERNAL) {
        refuse(ctx, "%s: is an external link to another file; xfer reads only the file it is given", object); return -1;
    }
    if (info->type != H5L_TYPE_HARD) {
        refuse(ctx, "%s: is a %s link, which Keras never writes", object, info->type == H5L_TYPE_SOFT ? "soft" : "user-defined"); return -1;
    }
    hid_t obj = H5Oopen(group, name, H5P_DEFAULT);
    if (obj < 0) { refuse_hdf5(ctx, object, "cannot be opened"); return -1; }
    int ok = check_attributes(ctx, obj, object);
    if (ok && H5Iget_type(obj) == H5I_DATASET) ok = check_dataset(ctx, obj, object);
    H5Oclose(obj);
    return ok ? 0 : -1;
}

/* The child: opens and walks the file, writes the refusal (if any) to the pipe, exits 0 or 1. */
static void probe_child(probe_ctx *ctx, const char *path, const void *image, size_t image_size) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t fapl = H5P_DEFAULT;
    if (image) {
        fapl = H5Pcreate(H5P_FILE_ACCESS);
        H5Pset_fapl_core(fapl, 1 << 20, 0);
        H5Pset_file_image(fapl, (void *)image, image_size);
    } else if (H5Fis_hdf5(path) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        refuse(ctx, "!not-hdf5");
    }
    hid_t file = ctx->failure[0] ? -1 : H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (!ctx->failure[0] && file < 0) {
        char why[256] = "";
        H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost, why);
        H5Eclear2(H5E_DEFAULT);
        refuse(ctx, "!open: libhdf5: %s", why[0] ? why : "cannot open it");
    }
    if (file >= 0) {
        hid_t root = H5Gopen2(file, "/", H5P_DEFAULT);
        if (root < 0) refuse_hdf5(ctx, "/", "cannot be opened");
        else {
            if (check_attributes(ctx, root, "/"))
                if (H5Lvisit(root, H5_INDEX_NAME, H5_ITER_INC, check_link, ctx) < 0 && !ctx->failure[0])
                    refuse_hdf5(ctx, "/", "its groups cannot be listed");
            H5Gclose(root);
        }
        H5Fclose(file);
    }
    if (ctx->failure[0]) {
        size_t n = strlen(ctx->failure);
        const char *p = ctx->failure;
        while (n > 0) { ssize_t w = write(ctx->fd, p, n); if (w <= 0) break; p += w; n -= (size_t)w; }
        _exit(1);
    }
    _exit(0);
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Virtual memory of the process, in bytes (0 if unknown). */
static uint64_t current_vm(void) {
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[128];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    return (uint64_t)strtoull(buf, NULL, 10) * (uint64_t)sysconf(_SC_PAGESIZE);
}

int xfer_hdf5_probe(const char *path, const void *image, size_t image_size, double timeout_seconds,
                    size_t memory_bytes, char *message, size_t message_size) {
    if (message_size) message[0] = '\0';
    uint64_t file_size = image_size;
    if (!image) {
        struct stat st;
        if (stat(path, &st) != 0) return XFER_PROBE_UNAVAILABLE;
        file_size = (uint64_t)st.st_size;
    }
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return XFER_PROBE_UNAVAILABLE;
    uint64_t vm = current_vm();
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) { close(fds[0]); close(fds[1]); return XFER_PROBE_UNAVAILABLE; }
    if (pid == 0) {
        close(fds[0]);
        /* Die with the parent; let faults end the child (the parent's guard must not print). */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(9);
        /* glibc reports heap corruption on stderr before it aborts: the child prints nothing. */
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) { dup2(null, 0); dup2(null, 1); dup2(null, 2); }
        else { close(1); close(2); }
        setenv("LIBC_FATAL_STDERR_", "1", 1);
        int sigs[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL, SIGTERM, SIGHUP, SIGXCPU};
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) signal(sigs[i], SIG_DFL);
        if (memory_bytes > 0 && vm > 0) {
            struct rlimit lim = {vm + memory_bytes, vm + memory_bytes};
            setrlimit(RLIMIT_AS, &lim);
        }
        struct rlimit core = {0, 0};
        setrlimit(RLIMIT_CORE, &core);
        /* SIGXCPU at the limit, SIGKILL a second later if it is ignored. */
        rlim_t cpu = (rlim_t)ceil(timeout_seconds);
        struct rlimit cpu_limit = {cpu, cpu + 1};
        setrlimit(RLIMIT_CPU, &cpu_limit);
        probe_ctx ctx = {.fd = fds[1], .file_size = file_size};
        probe_child(&ctx, path, image, image_size);
        _exit(1);
    }
    close(fds[1]);
    size_t used = 0;
    double deadline = now_seconds() + 6 * timeout_seconds;
    int timed_out = 0;
    for (;;) {
        double left = deadline - now_seconds();
        if (left <= 0) { timed_out = 1; break; }
        struct pollfd pfd = {fds[0], POLLIN, 0};
        int r = poll(&pfd, 1, (int)(left * 1000) + 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) continue;
        char buf[512];
        ssize_t n = read(fds[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break; /* EOF: the child has exited */
        for (ssize_t i = 0; i < n && used + 1 < message_size; i++) message[used++] = buf[i];
        message[used] = '\0';
    }
    close(fds[0]);
    if (timed_out) kill(pid, SIGKILL);
    int status = 0;
    struct rusage usage;
    memset(&usage, 0, sizeof usage);
    while (wait4(pid, &status, 0, &usage) < 0 && errno == EINTR) {}
    if (timed_out) return XFER_PROBE_TIMEOUT;
    double cpu_used = (double)usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6
                    + (double)usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6;
    if (WIFSIGNALED(status) && (WTERMSIG(status) == SIGXCPU || (WTERMSIG(status) == SIGKILL && cpu_used >= floor(timeout_seconds))))
        return XFER_PROBE_TIMEOUT;
    if (WIFSIGNALED(status)) {
        if (message_size) snprintf(message, message_size, "%d", WTERMSIG(status));
        return XFER_PROBE_CRASHED;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return XFER_PROBE_OK;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 1 && used > 0) return XFER_PROBE_REFUSED;
    if (message_size) snprintf(message, message_size, "exit %d", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return XFER_PROBE_CRASHED;
}
