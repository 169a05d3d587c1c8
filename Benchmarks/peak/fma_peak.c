// fma_peak: the single-precision floating-point peak of this machine, measured.
//
// Each thread runs independent chains of vector multiply-adds (a = a·b + c) on
// registers only, enough chains to hide the FMA latency, for a fixed time; no memory
// traffic, no library. What it prints is the most any float32 GEMM or convolution
// can reach here; BENCHMARKS.md sets xfer's and TensorFlow's convolution speeds
// against it. With -march=native the vectors are as wide as the CPU's (AVX-512 on
// this machine, else AVX2).
//
//   cc -O2 -march=native -pthread -o /tmp/fma_peak Benchmarks/peak/fma_peak.c
//   /tmp/fma_peak [threads=2] [seconds=2]
//
// Prints: fma_peak threads=T gflops=G per_thread=G/T
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

// One vector register: 16 floats with AVX-512, 8 with AVX, else 4.
#if defined(__AVX512F__)
enum { LANES = 16 };
#elif defined(__AVX__)
enum { LANES = 8 };
#else
enum { LANES = 4 };
#endif
typedef float vec __attribute__((vector_size(LANES * 4)));
enum { INNER = 1000 };

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

typedef struct { double seconds, flops; float sink; } Job;

// Twelve named accumulators, so that the compiler keeps every chain in a register.
#define CHAINS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define DECLARE(j) vec a##j = b * (float)(j + 1);
#define STEP(j) a##j = a##j * b + c;
#define SUM(j) s += a##j;

static void *run(void *arg) {
    Job *job = arg;
    vec b, c;
    for (int i = 0; i < LANES; i++) { b[i] = 0.999999f; c[i] = 1e-7f; }
    CHAINS(DECLARE)
    double start = now(), iterations = 0;
    while (now() - start < job->seconds) {
        for (int k = 0; k < INNER; k++) {
            CHAINS(STEP)
            __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5));
            __asm__ volatile("" : "+v"(a6), "+v"(a7), "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11));
        }
        iterations += INNER;
    }
    job->flops = iterations * 12 * LANES * 2 / (now() - start);
    vec s = { 0 };
    CHAINS(SUM)
    job->sink = s[0];
    return NULL;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    double seconds = argc > 2 ? atof(argv[2]) : 2;
    if (threads < 1 || threads > 256 || seconds <= 0) {
        fprintf(stderr, "usage: fma_peak [threads] [seconds]\n");
        return 2;
    }
    pthread_t tid[256];
    Job jobs[256];
    for (int t = 0; t < threads; t++) {
        jobs[t] = (Job){ .seconds = seconds };
        pthread_create(&tid[t], NULL, run, &jobs[t]);
    }
    double total = 0, sink = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(tid[t], NULL);
        total += jobs[t].flops;
        sink += jobs[t].sink;
    }
    printf("fma_peak threads=%d lanes=%d gflops=%.1f per_thread=%.1f%s\n", threads, LANES, total * 1e-9,
           total * 1e-9 / threads, sink != sink ? " (nan)" : "");
    return 0;
}
