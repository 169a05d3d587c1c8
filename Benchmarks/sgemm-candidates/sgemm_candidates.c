// Compares the SGEMM libraries Debian ships (OpenBLAS, BLIS, oneDNN), and optionally
// newer OpenBLAS and oneMKL builds from PyPI, on the GEMM shapes of VGG16's convolutions
// as xfer runs them: C(M×N) = A(M×K)·B(K×N), row-major, A = im2col of a tile of M output
// pixels, B = the Keras kernel (KH·KW·C_in, O), K = 9·C_in, N = O. Each library is
// dlopen'ed privately, so they coexist in one process and run under the same conditions.
//
//   cc -O2 -o /tmp/sgemm_candidates Benchmarks/sgemm-candidates/sgemm_candidates.c -ldl -lpthread
//   /tmp/sgemm_candidates [images=2] [workspaceMB=4]
//
// Two more candidates, newer than Debian's, when their paths are given (PyPI wheels, unzipped):
//   pip download --no-deps -d /tmp/wheels scipy-openblas32 mkl
//   cd /tmp/wheels && unzip -q -o 'scipy_openblas32-*.whl' && unzip -q -o 'mkl-*.whl'
//   export SGEMM_OPENBLAS_PYPI=/tmp/wheels/scipy_openblas32/lib/libscipy_openblas.so
//   export SGEMM_MKL=$(ls -d /tmp/wheels/mkl-*.data)/data/lib/libmkl_rt.so.3
//   /tmp/sgemm_candidates 2 2
//
// Modes, per library:
//   1T       one thread, library single-threaded
//   2T-pool  two threads of ours, each taking half the tiles, library single-threaded in each
//   2T-lib   one caller, library asked for two threads
// Figures are GFLOP/s over the whole VGG16 conv base (flop-weighted), then per layer for 1T.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef void (*gemm_fn)(int M, int N, int K, const float *A, const float *B, float *C);

// --- library bindings -------------------------------------------------------
static void *h_openblas, *h_blis, *h_dnnl, *h_gomp;
static void (*ob_sgemm)(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
static void (*ob_set_threads)(int);
static char *(*ob_corename)(void);
static void (*blis_sgemm)(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
static void (*blis_set_threads)(long);
static int (*blis_arch_id)(void);
static char *(*blis_arch_string)(int);
static int (*dnnl_sgemm_p)(char, char, long, long, long, float, const float *, long, const float *, long, float, float *, long);
static void (*omp_set_threads)(int);
// Optional: OpenBLAS as built for SciPy (symbols prefixed scipy_), oneMKL (libmkl_rt).
static void *h_obpypi, *h_mkl;
static void (*obp_sgemm)(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
static void (*obp_set_threads)(int);
static char *(*obp_corename)(void);
static void (*mkl_sgemm)(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *, int);
static int (*mkl_set_layer)(int);
static int (*mkl_set_threads)(int);

enum { RowMajor = 101, NoTrans = 111 };
static void g_openblas(int M, int N, int K, const float *A, const float *B, float *C) {
    ob_sgemm(RowMajor, NoTrans, NoTrans, M, N, K, 1, A, K, B, N, 0, C, N);
}
static void g_blis(int M, int N, int K, const float *A, const float *B, float *C) {
    blis_sgemm(RowMajor, NoTrans, NoTrans, M, N, K, 1, A, K, B, N, 0, C, N);
}
static void g_dnnl(int M, int N, int K, const float *A, const float *B, float *C) {
    dnnl_sgemm_p('N', 'N', M, N, K, 1, A, K, B, N, 0, C, N);
}
static void g_obpypi(int M, int N, int K, const float *A, const float *B, float *C) {
    obp_sgemm(RowMajor, NoTrans, NoTrans, M, N, K, 1, A, K, B, N, 0, C, N);
}
static void g_mkl(int M, int N, int K, const float *A, const float *B, float *C) {
    mkl_sgemm(RowMajor, NoTrans, NoTrans, M, N, K, 1, A, K, B, N, 0, C, N);
}

static void *need(void *h, const char *name) {
    void *p = dlsym(h, name);
    if (!p) { fprintf(stderr, "missing %s\n", name); exit(1); }
    return p;
}
static void load(void) {
    h_gomp = dlopen("libgomp.so.1", RTLD_NOW | RTLD_GLOBAL);
    omp_set_threads = need(h_gomp, "omp_set_num_threads");
    h_openblas = dlopen("/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    h_blis = dlopen("/usr/lib/x86_64-linux-gnu/libblis.so.4", RTLD_NOW | RTLD_LOCAL);
    h_dnnl = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!h_openblas || !h_blis || !h_dnnl) { fprintf(stderr, "dlopen: %s\n", dlerror()); exit(1); }
    ob_sgemm = need(h_openblas, "cblas_sgemm");
    ob_set_threads = need(h_openblas, "openblas_set_num_threads");
    ob_corename = need(h_openblas, "openblas_get_corename");
    blis_sgemm = need(h_blis, "cblas_sgemm");
    blis_set_threads = need(h_blis, "bli_thread_set_num_threads");
    blis_arch_id = need(h_blis, "bli_arch_query_id");
    blis_arch_string = need(h_blis, "bli_arch_string");
    dnnl_sgemm_p = need(h_dnnl, "dnnl_sgemm");
    const char *path = getenv("SGEMM_OPENBLAS_PYPI");
    if (path && *path) {
        if (!(h_obpypi = dlopen(path, RTLD_NOW | RTLD_LOCAL))) { fprintf(stderr, "dlopen: %s\n", dlerror()); exit(1); }
        obp_sgemm = need(h_obpypi, "scipy_cblas_sgemm");
        obp_set_threads = need(h_obpypi, "scipy_openblas_set_num_threads");
        obp_corename = need(h_obpypi, "scipy_openblas_get_corename");
    }
    path = getenv("SGEMM_MKL");
    if (path && *path) {
        if (!(h_mkl = dlopen(path, RTLD_NOW | RTLD_LOCAL))) { fprintf(stderr, "dlopen: %s\n", dlerror()); exit(1); }
        mkl_sgemm = need(h_mkl, "cblas_sgemm");
        mkl_set_layer = need(h_mkl, "MKL_Set_Threading_Layer");
        mkl_set_threads = need(h_mkl, "MKL_Set_Num_Threads_Local");
        mkl_set_layer(3);  // MKL_THREADING_GNU: the system's libgomp; threads set per calling thread below
    }
}
// Threads the library may use inside one call. For oneDNN (OpenMP) the setting is per calling thread.
static void set_lib_threads(int lib, int n) {
    if (lib == 0) ob_set_threads(n);
    if (lib == 1) blis_set_threads(n);
    if (lib == 2) omp_set_threads(n);
    if (lib == 3) obp_set_threads(n);
    if (lib == 4) mkl_set_threads(n);
}
static const char *lib_names[] = {"OpenBLAS 0.3.21", "BLIS 0.9.0", "oneDNN 2.6", "OpenBLAS (PyPI)", "oneMKL (PyPI)"};
static gemm_fn lib_fns[] = {g_openblas, g_blis, g_dnnl, g_obpypi, g_mkl};
// Whether library `lib` was loaded.
static int present(int lib) { return lib < 3 || (lib == 3 && h_obpypi) || (lib == 4 && h_mkl); }

// --- VGG16 conv base at 224×224 ----------------------------------------------
typedef struct { const char *name; int hw, cin, cout; } layer_t;
static const layer_t vgg[] = {
    {"block1_conv1", 224, 3, 64},   {"block1_conv2", 224, 64, 64},
    {"block2_conv1", 112, 64, 128}, {"block2_conv2", 112, 128, 128},
    {"block3_conv1", 56, 128, 256}, {"block3_conv2", 56, 256, 256}, {"block3_conv3", 56, 256, 256},
    {"block4_conv1", 28, 256, 512}, {"block4_conv2", 28, 512, 512}, {"block4_conv3", 28, 512, 512},
    {"block5_conv1", 14, 512, 512}, {"block5_conv2", 14, 512, 512}, {"block5_conv3", 14, 512, 512},
};
enum { NL = sizeof vgg / sizeof vgg[0] };

static int images = 2;
static long workspace_floats = 1 << 20;

// Tile of output pixels: as many as fit the per-thread im2col workspace, at most the whole batch.
static int tile_m(const layer_t *l) {
    long total = (long)images * l->hw * l->hw;
    long m = workspace_floats / (9L * l->cin);
    if (m < 32) m = 32;
    return (int)(m < total ? m : total);
}

static double now(void) {
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec;
}

static float *bufA[2], *bufB, *bufC[2];

typedef struct { gemm_fn f; int lib, layer, first_tile, tile_step, lib_threads; double seconds; } job_t;

// Runs every tile (first_tile, +tile_step, …) of one layer.
static void run_layer(gemm_fn f, int li, int first, int step, int slot) {
    const layer_t *l = &vgg[li];
    long total = (long)images * l->hw * l->hw;
    int M = tile_m(l), K = 9 * l->cin, N = l->cout;
    for (long p = (long)first * M; p < total; p += (long)step * M) {
        int m = (int)(total - p < M ? total - p : M);
        f(m, N, K, bufA[slot], bufB, bufC[slot]);
    }
}
static void *worker(void *arg) {
    job_t *j = arg;
    set_lib_threads(j->lib, j->lib_threads);
    run_layer(j->f, j->layer, j->first_tile, j->tile_step, j->first_tile);
    return NULL;
}

static double flops_of(int li) {
    const layer_t *l = &vgg[li];
    return 2.0 * images * l->hw * l->hw * 9.0 * l->cin * l->cout;
}

// mode 0: 1T, 1: 2T-pool, 2: 2T-lib. Returns seconds for the layer (median of 3).
static double time_layer(int lib, int li, int mode) {
    double best[3];
    for (int r = 0; r < 3; r++) {
        double t0 = now();
        if (mode == 1) {
            pthread_t th[2]; job_t j[2];
            for (int k = 0; k < 2; k++) {
                j[k] = (job_t){lib_fns[lib], lib, li, k, 2, 1, 0};
                pthread_create(&th[k], NULL, worker, &j[k]);
            }
            for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
        } else {
            set_lib_threads(lib, mode == 2 ? 2 : 1);
            run_layer(lib_fns[lib], li, 0, 1, 0);
        }
        best[r] = now() - t0;
    }
    // median of three
    double a = best[0], b = best[1], c = best[2];
    return a > b ? (b > c ? b : (a > c ? c : a)) : (a > c ? a : (b > c ? c : b));
}

static int cmpf(const void *a, const void *b) { float x = *(float *)a, y = *(float *)b; return x < y ? -1 : x > y; }

int main(int argc, char **argv) {
    if (argc > 1) images = atoi(argv[1]);
    if (argc > 2) workspace_floats = (long)(atof(argv[2]) * 1024 * 1024 / 4);
    load();
    printf("OpenBLAS core: %s; BLIS arch: %s; images %d; im2col workspace %.1f MB per thread\n",
           ob_corename(), blis_arch_string(blis_arch_id()), images, workspace_floats * 4.0 / (1 << 20));
    long maxA = 0, maxB = 0, maxC = 0;
    for (int i = 0; i < NL; i++) {
        long K = 9L * vgg[i].cin, M = tile_m(&vgg[i]);
        if (M * K > maxA) maxA = M * K;
        if (K * vgg[i].cout > maxB) maxB = K * vgg[i].cout;
        if (M * vgg[i].cout > maxC) maxC = M * vgg[i].cout;
    }
    srand(1);
    for (int k = 0; k < 2; k++) {
        bufA[k] = malloc(maxA * 4); bufC[k] = malloc(maxC * 4);
        for (long i = 0; i < maxA; i++) bufA[k][i] = rand() / (float)RAND_MAX - 0.5f;
        memset(bufC[k], 0, maxC * 4);
    }
    bufB = malloc(maxB * 4);
    for (long i = 0; i < maxB; i++) bufB[i] = rand() / (float)RAND_MAX - 0.5f;

    // Correctness first: one small product against a naive loop.
    {
        int M = 37, N = 29, K = 53;
        float *ref = calloc(M * N, 4);
        for (int i = 0; i < M; i++) for (int j = 0; j < N; j++) {
            double s = 0; for (int p = 0; p < K; p++) s += (double)bufA[0][i * K + p] * bufB[p * N + j];
            ref[i * N + j] = (float)s;
        }
        for (int lib = 0; lib < 5; lib++) {
            if (!present(lib)) continue;
            set_lib_threads(lib, 1);
            lib_fns[lib](M, N, K, bufA[0], bufB, bufC[0]);
            float e = 0; for (int i = 0; i < M * N; i++) { float d = bufC[0][i] - ref[i]; if (d < 0) d = -d; if (d > e) e = d; }
            printf("%-16s max |err| vs naive on 37x29x53: %.2e\n", lib_names[lib], e);
        }
        free(ref);
    }

    static const char *modes[] = {"1T", "2T-pool", "2T-lib"};
    if (h_obpypi) printf("OpenBLAS (PyPI) core: %s\n", obp_corename());
    for (int lib = 0; lib < 5; lib++) {
        if (!present(lib)) continue;
        for (int li = 0; li < NL; li++) time_layer(lib, li, 0);  // warm-up
        double per_layer[NL];
        for (int mode = 0; mode < 3; mode++) {
            double secs = 0, fl = 0;
            for (int li = 0; li < NL; li++) {
                double s = time_layer(lib, li, mode);
                if (mode == 0) per_layer[li] = s;
                secs += s; fl += flops_of(li);
            }
            printf("%-16s %-8s VGG16 conv base: %6.1f GFLOP/s\n", lib_names[lib], modes[mode], fl / secs * 1e-9);
        }
        printf("%-16s 1T per layer (M,N,K → GFLOP/s):", lib_names[lib]);
        for (int li = 0; li < NL; li++)
            printf(" %s(%d,%d,%d)=%.0f", vgg[li].name + 5, tile_m(&vgg[li]), vgg[li].cout, 9 * vgg[li].cin,
                   flops_of(li) / per_layer[li] * 1e-9);
        printf("\n");
    }
    (void)cmpf;
    return 0;
}
