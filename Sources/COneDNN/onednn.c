// oneDNN behind the small interface of xfer_onednn.h: its SGEMM, its Winograd convolution, and
// its direct convolution forward (the end of this file) for the shapes Winograd does not take.
//
// Why oneDNN's kernel and not transforms of our own around the SGEMM: oneDNN's jit_wino_4x3
// (AVX-512) fuses the input transform, the batched GEMMs and the output transform per tile
// block so the transformed tiles stay in cache, where transforms written out around a GEMM
// call would move every tile through memory twice; on VGG16 at batch 16 it runs the forward
// pass at 158 % of the machine's FMA peak in direct-convolution FLOPs (BENCHMARKS.md,
// "Winograd").
//
// Layouts: the engine keeps activations NHWC and kernels as Keras stores them (HWIO). The
// Winograd kernel wants its own blocked layouts (nChw16c, blocked weights), which oneDNN
// reports when asked with format `any`; every call reorders into them and back (oneDNN
// reorders). The blocked activations and the primitives' scratchpad (the transformed tiles)
// live in scratch memory the caller passes with each call (xfer_wino_scratch_bytes says how
// much): the engine's Workspace, a slice per worker, bounded by the chunk of the batch it
// passes (Engine/Winograd.swift).
//
// Threads: as for the SGEMM, each call runs on its calling thread alone (an OpenMP team of 1),
// and the engine runs the chunks of a batch as tasks on its own pool, one per worker thread:
// the process's one thread budget holds, and no OpenMP team waits spinning beside the pool
// (measured: a spinning team took a core from the pool's threads between calls).

#include "xfer_onednn.h"

#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// From libgomp; its header is not on the C compiler's path here, and this is all of it we use.
void omp_set_num_threads(int num_threads);

int xfer_sgemm(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha,
               const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
               float *C, int64_t ldc) {
    omp_set_num_threads(1);
    return (int)dnnl_sgemm(transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// A reorder from one layout to another (NULL primitive when they are the same), with its
// scratchpad's layout (some reorders need one).
typedef struct {
    dnnl_primitive_t p;
    dnnl_memory_desc_t scratch;
} reorder_t;

struct xfer_wino {
    int backward;
    int with_bias;  // the forward adds the bias (XFER_WINO_BIAS)
    dnnl_memory_desc_t b_md;
    dnnl_memory_desc_t x_md, y_md, w_md;  // the engine's layouts: NHWC, NHWC, HWIO
    // Forward.
    dnnl_primitive_desc_t fwd_pd;
    dnnl_primitive_t fwd;
    dnnl_memory_desc_t fwd_src, fwd_wei, fwd_dst;
    reorder_t fwd_src_in, fwd_wei_in, fwd_dst_out;
    dnnl_memory_t fwd_weights;
    dnnl_memory_desc_t fwd_scratch;
    // Backward data.
    dnnl_primitive_t bwd_data;
    dnnl_memory_desc_t bd_diff_dst, bd_wei, bd_diff_src;
    reorder_t bd_diff_dst_in, bd_wei_in, bd_diff_src_out;
    dnnl_memory_t bd_weights;
    dnnl_memory_desc_t bd_scratch;
    // Backward weights.
    dnnl_primitive_t bwd_weights;
    dnnl_memory_desc_t bw_src, bw_diff_dst, bw_diff_wei;
    reorder_t bw_src_in, bw_diff_dst_in, bw_diff_wei_out;
    dnnl_memory_desc_t bw_scratch;
    char implementation[64];
    size_t regions[4];  // bytes of each scratch region a call needs (worker_t.scratch)
};

static dnnl_engine_t engine;
// Every primitive takes its scratchpad (the transformed tiles) from the caller, so the layers
// share one buffer per worker, as large as the largest needs, instead of holding one each.
static dnnl_primitive_attr_t user_scratchpad;
static dnnl_status_t engine_status = dnnl_runtime_error;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;

static void make_engine(void) {
    engine_status = dnnl_engine_create(&engine, dnnl_cpu, 0);
    if (engine_status == dnnl_success) engine_status = dnnl_primitive_attr_create(&user_scratchpad);
    if (engine_status == dnnl_success)
        engine_status = dnnl_primitive_attr_set_scratchpad_mode(user_scratchpad, dnnl_scratchpad_mode_user);
}

// What one worker thread calls with: its stream (oneDNN streams are not thread-safe) and, for
// the length of one call, the four regions of the scratch the caller passed (two for blocked
// activations, one for the primitives' scratchpad, one for a weight gradient in its blocked
// layout). Worker i is used by one thread at a time (the engine's pool hands out worker indices).
typedef struct {
    dnnl_stream_t stream;
    void *scratch[4];
    size_t size[4];
} worker_t;
static worker_t workers[XFER_WINO_MAX_WORKERS];

static void *scratch_buffer(worker_t *wk, int i, size_t bytes) {
    return wk->size[i] >= bytes ? wk->scratch[i] : NULL;
}

static size_t aligned(size_t bytes) { return (bytes + 63) & ~(size_t)63; }

static void copy_md(dnnl_memory_desc_t *to, const dnnl_memory_desc_t *from) { memcpy(to, from, sizeof *to); }

#define TRY(call) do { dnnl_status_t s_ = (call); if (s_ != dnnl_success) return s_; } while (0)

static dnnl_status_t make_reorder(const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to,
                                  reorder_t *out) {
    out->p = NULL;
    if (dnnl_memory_desc_equal(from, to)) return dnnl_success;
    dnnl_primitive_desc_t pd;
    TRY(dnnl_reorder_primitive_desc_create(&pd, from, engine, to, engine, user_scratchpad));
    copy_md(&out->scratch, dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0));
    dnnl_status_t s = dnnl_primitive_create(&out->p, pd);
    dnnl_primitive_desc_destroy(pd);
    return s;
}

// The worker's scratchpad region (2) as `md` says, or NULL when it needs none.
static dnnl_status_t scratchpad(worker_t *wk, const dnnl_memory_desc_t *md, dnnl_memory_t *out) {
    *out = NULL;
    size_t bytes = dnnl_memory_desc_get_size(md);
    if (bytes == 0) return dnnl_success;
    void *buffer = scratch_buffer(wk, 2, bytes);
    if (!buffer) return dnnl_out_of_memory;
    return dnnl_memory_create(out, md, engine, buffer);
}

// Runs `p` on `args` (`count` of them, room for one more) with the worker's scratchpad, and
// waits: the worker's next primitive reuses the scratchpad.
static dnnl_status_t run(worker_t *wk, dnnl_primitive_t p, const dnnl_memory_desc_t *scratch_md, dnnl_exec_arg_t *args, int count) {
    dnnl_memory_t pad;
    TRY(scratchpad(wk, scratch_md, &pad));
    if (pad) args[count++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, pad};
    dnnl_status_t s = dnnl_primitive_execute(p, wk->stream, count, args);
    if (s == dnnl_success) s = dnnl_stream_wait(wk->stream);
    if (pad) dnnl_memory_destroy(pad);
    return s;
}

static dnnl_status_t run_reorder(worker_t *wk, const reorder_t *r, dnnl_memory_t from, dnnl_memory_t to) {
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    return run(wk, r->p, &r->scratch, args, 2);
}

// A memory object over `data` in layout `md`.
static dnnl_memory_t wrap(const dnnl_memory_desc_t *md, const void *data) {
    dnnl_memory_t m = NULL;
    if (dnnl_memory_create(&m, md, engine, (void *)data) != dnnl_success) return NULL;
    return m;
}

// `data` (in `user` layout) as seen in `inner` layout: itself, or reordered into scratch `slot`.
static dnnl_status_t bring_in(worker_t *wk, const reorder_t *reorder, const dnnl_memory_desc_t *user,
                              const dnnl_memory_desc_t *inner, const void *data, int slot,
                              dnnl_memory_t *out) {
    if (!reorder->p) {
        *out = wrap(user, data);
        return *out ? dnnl_success : dnnl_out_of_memory;
    }
    void *buffer = scratch_buffer(wk, slot, dnnl_memory_desc_get_size(inner));
    if (!buffer) return dnnl_out_of_memory;
    dnnl_memory_t from = wrap(user, data);
    *out = wrap(inner, buffer);
    if (!from || !*out) return dnnl_out_of_memory;
    dnnl_status_t s = run_reorder(wk, reorder, from, *out);
    dnnl_memory_destroy(from);
    return s;
}

// A memory for a result in `inner` layout that ends up in `data` (`user` layout).
static dnnl_memory_t result_memory(worker_t *wk, const reorder_t *reorder, const dnnl_memory_desc_t *user,
                                   const dnnl_memory_desc_t *inner, void *data, int slot) {
    if (!reorder->p) return wrap(user, data);
    void *buffer = scratch_buffer(wk, slot, dnnl_memory_desc_get_size(inner));
    return buffer ? wrap(inner, buffer) : NULL;
}

static dnnl_status_t take_out(worker_t *wk, const reorder_t *reorder, const dnnl_memory_desc_t *user,
                              dnnl_memory_t inner, void *data) {
    if (!reorder->p) return dnnl_success;
    dnnl_memory_t to = wrap(user, data);
    if (!to) return dnnl_out_of_memory;
    dnnl_status_t s = run_reorder(wk, reorder, inner, to);
    dnnl_memory_destroy(to);
    return s;
}

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

// A blocked copy is needed only where a reorder exists.
static size_t copy_size(const reorder_t *r, const dnnl_memory_desc_t *inner) {
    return r->p ? aligned(dnnl_memory_desc_get_size(inner)) : 0;
}

static dnnl_status_t measure_regions(xfer_wino *cv) {
    size_t *r = cv->regions;
    r[0] = copy_size(&cv->fwd_src_in, &cv->fwd_src);
    r[1] = copy_size(&cv->fwd_dst_out, &cv->fwd_dst);
    r[2] = aligned(dnnl_memory_desc_get_size(&cv->fwd_scratch));
    const reorder_t *reorders[] = {&cv->fwd_src_in, &cv->fwd_wei_in, &cv->fwd_dst_out, &cv->bd_diff_dst_in,
                                   &cv->bd_wei_in, &cv->bd_diff_src_out, &cv->bw_src_in, &cv->bw_diff_dst_in,
                                   &cv->bw_diff_wei_out};
    for (size_t i = 0; i < sizeof reorders / sizeof *reorders; i++)
        if (reorders[i]->p) r[2] = max_size(r[2], aligned(dnnl_memory_desc_get_size(&reorders[i]->scratch)));
    if (cv->backward) {
        r[0] = max_size(r[0], max_size(copy_size(&cv->bd_diff_dst_in, &cv->bd_diff_dst), copy_size(&cv->bw_src_in, &cv->bw_src)));
        r[1] = max_size(r[1], max_size(copy_size(&cv->bd_diff_src_out, &cv->bd_diff_src),
                                       copy_size(&cv->bw_diff_dst_in, &cv->bw_diff_dst)));
        r[2] = max_size(r[2], max_size(aligned(dnnl_memory_desc_get_size(&cv->bd_scratch)),
                                       aligned(dnnl_memory_desc_get_size(&cv->bw_scratch))));
        r[3] = copy_size(&cv->bw_diff_wei_out, &cv->bw_diff_wei);
    }
    return dnnl_success;
}

static dnnl_status_t create(xfer_wino *cv, int fuse, int64_t n, int64_t h, int64_t w, int64_t c, int64_t o,
                            int64_t oh, int64_t ow, int64_t pt, int64_t pl, int64_t pb, int64_t pr) {
    dnnl_dims_t xd = {n, c, h, w}, wd = {o, c, 3, 3}, yd = {n, o, oh, ow};
    dnnl_dims_t strides = {1, 1}, pad_l = {pt, pl}, pad_r = {pb, pr};
    dnnl_memory_desc_t any_x, any_w, any_y;
    TRY(dnnl_memory_desc_init_by_tag(&cv->x_md, 4, xd, dnnl_f32, dnnl_nhwc));
    TRY(dnnl_memory_desc_init_by_tag(&cv->y_md, 4, yd, dnnl_f32, dnnl_nhwc));
    TRY(dnnl_memory_desc_init_by_tag(&cv->w_md, 4, wd, dnnl_f32, dnnl_hwio));
    TRY(dnnl_memory_desc_init_by_tag(&any_x, 4, xd, dnnl_f32, dnnl_format_tag_any));
    TRY(dnnl_memory_desc_init_by_tag(&any_y, 4, yd, dnnl_f32, dnnl_format_tag_any));
    TRY(dnnl_memory_desc_init_by_tag(&any_w, 4, wd, dnnl_f32, dnnl_format_tag_any));

    dnnl_convolution_desc_t fd;
    // forward_training even for inference: its kernel keeps the weights in a plain blocked layout
    // and transforms them per call into the shared scratchpad, where forward_inference keeps them
    // transformed, 4× their size (36 values per 3×3 filter), for every layer. Measured on VGG16's
    // 12 Winograd layers at batch 16 (BENCHMARKS.md, "Winograd"): the same time to 0.3 %, and
    // 170 MB less resident memory.
    dnnl_dims_t bias_dims = {o};
    TRY(dnnl_memory_desc_init_by_tag(&cv->b_md, 1, bias_dims, dnnl_f32, dnnl_x));
    TRY(dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training,
                                           dnnl_convolution_winograd, &any_x, &any_w, cv->with_bias ? &cv->b_md : NULL,
                                           &any_y, strides, pad_l, pad_r));
    // A fused ReLU runs in the kernel's output transform, so the output is written once.
    dnnl_primitive_attr_t attr = user_scratchpad;
    if (fuse & XFER_WINO_RELU) {
        dnnl_post_ops_t ops;
        TRY(dnnl_primitive_attr_clone(&attr, user_scratchpad));
        TRY(dnnl_post_ops_create(&ops));
        dnnl_status_t s = dnnl_post_ops_append_eltwise(ops, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f);
        if (s == dnnl_success) s = dnnl_primitive_attr_set_post_ops(attr, ops);
        dnnl_post_ops_destroy(ops);
        if (s != dnnl_success) {
            dnnl_primitive_attr_destroy(attr);
            return s;
        }
    }
    dnnl_status_t made = dnnl_primitive_desc_create(&cv->fwd_pd, &fd, attr, engine, NULL);
    if (attr != user_scratchpad) dnnl_primitive_attr_destroy(attr);
    TRY(made);
    const char *impl = "";
    dnnl_primitive_desc_query(cv->fwd_pd, dnnl_query_impl_info_str, 0, &impl);
    snprintf(cv->implementation, sizeof cv->implementation, "%s", impl);
    copy_md(&cv->fwd_src, dnnl_primitive_desc_query_md(cv->fwd_pd, dnnl_query_src_md, 0));
    copy_md(&cv->fwd_wei, dnnl_primitive_desc_query_md(cv->fwd_pd, dnnl_query_weights_md, 0));
    copy_md(&cv->fwd_dst, dnnl_primitive_desc_query_md(cv->fwd_pd, dnnl_query_dst_md, 0));
    copy_md(&cv->fwd_scratch, dnnl_primitive_desc_query_md(cv->fwd_pd, dnnl_query_scratchpad_md, 0));
    TRY(dnnl_primitive_create(&cv->fwd, cv->fwd_pd));
    TRY(make_reorder(&cv->x_md, &cv->fwd_src, &cv->fwd_src_in));
    TRY(make_reorder(&cv->w_md, &cv->fwd_wei, &cv->fwd_wei_in));
    TRY(make_reorder(&cv->fwd_dst, &cv->y_md, &cv->fwd_dst_out));
    TRY(dnnl_memory_create(&cv->fwd_weights, &cv->fwd_wei, engine, DNNL_MEMORY_ALLOCATE));
    if (!cv->backward) return measure_regions(cv);

    dnnl_convolution_desc_t bd;
    dnnl_primitive_desc_t pd;
    TRY(dnnl_convolution_backward_data_desc_init(&bd, dnnl_convolution_winograd, &any_x, &any_w, &any_y,
                                                 strides, pad_l, pad_r));
    TRY(dnnl_primitive_desc_create(&pd, &bd, user_scratchpad, engine, cv->fwd_pd));
    copy_md(&cv->bd_scratch, dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0));
    copy_md(&cv->bd_diff_dst, dnnl_primitive_desc_query_md(pd, dnnl_query_diff_dst_md, 0));
    copy_md(&cv->bd_wei, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0));
    copy_md(&cv->bd_diff_src, dnnl_primitive_desc_query_md(pd, dnnl_query_diff_src_md, 0));
    dnnl_status_t s = dnnl_primitive_create(&cv->bwd_data, pd);
    dnnl_primitive_desc_destroy(pd);
    TRY(s);
    TRY(make_reorder(&cv->y_md, &cv->bd_diff_dst, &cv->bd_diff_dst_in));
    TRY(make_reorder(&cv->w_md, &cv->bd_wei, &cv->bd_wei_in));
    TRY(make_reorder(&cv->bd_diff_src, &cv->x_md, &cv->bd_diff_src_out));
    TRY(dnnl_memory_create(&cv->bd_weights, &cv->bd_wei, engine, DNNL_MEMORY_ALLOCATE));

    dnnl_convolution_desc_t wdsc;
    TRY(dnnl_convolution_backward_weights_desc_init(&wdsc, dnnl_convolution_winograd, &any_x, &any_w, NULL,
                                                    &any_y, strides, pad_l, pad_r));
    TRY(dnnl_primitive_desc_create(&pd, &wdsc, user_scratchpad, engine, cv->fwd_pd));
    copy_md(&cv->bw_scratch, dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0));
    copy_md(&cv->bw_src, dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0));
    copy_md(&cv->bw_diff_dst, dnnl_primitive_desc_query_md(pd, dnnl_query_diff_dst_md, 0));
    copy_md(&cv->bw_diff_wei, dnnl_primitive_desc_query_md(pd, dnnl_query_diff_weights_md, 0));
    s = dnnl_primitive_create(&cv->bwd_weights, pd);
    dnnl_primitive_desc_destroy(pd);
    TRY(s);
    TRY(make_reorder(&cv->x_md, &cv->bw_src, &cv->bw_src_in));
    TRY(make_reorder(&cv->y_md, &cv->bw_diff_dst, &cv->bw_diff_dst_in));
    TRY(make_reorder(&cv->bw_diff_wei, &cv->w_md, &cv->bw_diff_wei_out));
    return measure_regions(cv);
}

xfer_wino *xfer_wino_create(int backward, int fuse, int64_t n, int64_t h, int64_t w, int64_t c, int64_t o,
                            int64_t oh, int64_t ow, int64_t pad_top, int64_t pad_left,
                            int64_t pad_bottom, int64_t pad_right, char *why, int why_size) {
    pthread_once(&engine_once, make_engine);
    if (engine_status != dnnl_success) {
        if (why) snprintf(why, why_size, "oneDNN has no CPU engine (status %d)", (int)engine_status);
        return NULL;
    }
    xfer_wino *cv = calloc(1, sizeof *cv);
    if (!cv) return NULL;
    cv->backward = backward;
    cv->with_bias = (fuse & XFER_WINO_BIAS) != 0;
    dnnl_status_t s = create(cv, fuse, n, h, w, c, o, oh, ow, pad_top, pad_left, pad_bottom, pad_right);
    if (s != dnnl_success) {
        if (why) {
            if (s == dnnl_unimplemented) snprintf(why, why_size, "oneDNN has no Winograd kernel for this shape on this CPU");
            else snprintf(why, why_size, "oneDNN refused it (status %d)", (int)s);
        }
        xfer_wino_destroy(cv);
        return NULL;
    }
    return cv;
}

void xfer_wino_destroy(xfer_wino *cv) {
    if (!cv) return;
    dnnl_primitive_t prims[] = {cv->fwd, cv->bwd_data, cv->bwd_weights};
    for (size_t i = 0; i < sizeof prims / sizeof *prims; i++)
        if (prims[i]) dnnl_primitive_destroy(prims[i]);
    reorder_t *reorders[] = {&cv->fwd_src_in, &cv->fwd_wei_in, &cv->fwd_dst_out, &cv->bd_diff_dst_in, &cv->bd_wei_in,
                             &cv->bd_diff_src_out, &cv->bw_src_in, &cv->bw_diff_dst_in, &cv->bw_diff_wei_out};
    for (size_t i = 0; i < sizeof reorders / sizeof *reorders; i++)
        if (reorders[i]->p) dnnl_primitive_destroy(reorders[i]->p);
    dnnl_memory_t mems[] = {cv->fwd_weights, cv->bd_weights};
    for (size_t i = 0; i < sizeof mems / sizeof *mems; i++)
        if (mems[i]) dnnl_memory_destroy(mems[i]);
    if (cv->fwd_pd) dnnl_primitive_desc_destroy(cv->fwd_pd);
    free(cv);
}

const char *xfer_wino_implementation(const xfer_wino *cv) { return cv->implementation; }

// A weights memory in its primitive's layout, filled from the HWIO kernel.
static dnnl_status_t load_kernel(worker_t *wk, xfer_wino *cv, const reorder_t *reorder, const dnnl_memory_desc_t *inner,
                                 dnnl_memory_t into, const float *hwio) {
    if (!reorder->p) {
        void *data = NULL;
        TRY(dnnl_memory_get_data_handle(into, &data));
        memcpy(data, hwio, dnnl_memory_desc_get_size(inner));
        return dnnl_success;
    }
    dnnl_memory_t from = wrap(&cv->w_md, hwio);
    if (!from) return dnnl_out_of_memory;
    dnnl_status_t s = run_reorder(wk, reorder, from, into);
    dnnl_memory_destroy(from);
    return s;
}

size_t xfer_wino_scratch_bytes(const xfer_wino *cv) {
    return cv->regions[0] + cv->regions[1] + cv->regions[2] + cv->regions[3];
}

// Worker `i` with `scratch` (xfer_wino_scratch_bytes of `cv`) cut into its regions, its stream
// made on first use; NULL when out of range or oneDNN fails.
static worker_t *worker_with(int i, const size_t regions[4], void *scratch) {
    if (i < 0 || i >= XFER_WINO_MAX_WORKERS || engine_status != dnnl_success) return NULL;
    worker_t *wk = &workers[i];
    if (!wk->stream && dnnl_stream_create(&wk->stream, engine, dnnl_stream_default_flags) != dnnl_success) {
        wk->stream = NULL;
        return NULL;
    }
    char *next = scratch;
    for (int r = 0; r < 4; r++) {
        wk->scratch[r] = regions[r] ? next : NULL;
        wk->size[r] = regions[r];
        next += regions[r];
    }
    omp_set_num_threads(1);
    return wk;
}

static worker_t *worker(int i, const xfer_wino *cv, void *scratch) { return worker_with(i, cv->regions, scratch); }

int xfer_wino_set_kernel(xfer_wino *cv, const float *hwio, int worker_index, void *scratch) {
    worker_t *wk = worker(worker_index, cv, scratch);
    if (!wk) return (int)dnnl_invalid_arguments;
    dnnl_status_t s = load_kernel(wk, cv, &cv->fwd_wei_in, &cv->fwd_wei, cv->fwd_weights, hwio);
    if (s == dnnl_success && cv->backward) s = load_kernel(wk, cv, &cv->bd_wei_in, &cv->bd_wei, cv->bd_weights, hwio);
    return (int)s;
}

static dnnl_status_t forward(worker_t *wk, xfer_wino *cv, const float *x, const float *bias, float *y) {
    dnnl_memory_t src = NULL, dst = NULL, b = NULL;
    if (cv->with_bias && !(b = wrap(&cv->b_md, bias))) return dnnl_out_of_memory;
    dnnl_status_t s = bring_in(wk, &cv->fwd_src_in, &cv->x_md, &cv->fwd_src, x, 0, &src);
    if (s == dnnl_success) {
        dst = result_memory(wk, &cv->fwd_dst_out, &cv->y_md, &cv->fwd_dst, y, 1);
        if (!dst) s = dnnl_out_of_memory;
    }
    if (s == dnnl_success) {
        dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, cv->fwd_weights}, {DNNL_ARG_DST, dst},
                                   {DNNL_ARG_BIAS, b}};
        s = run(wk, cv->fwd, &cv->fwd_scratch, args, b ? 4 : 3);
    }
    if (s == dnnl_success) s = take_out(wk, &cv->fwd_dst_out, &cv->y_md, dst, y);
    if (b) dnnl_memory_destroy(b);
    if (src) dnnl_memory_destroy(src);
    if (dst) dnnl_memory_destroy(dst);
    return s;
}

static dnnl_status_t backward_data(worker_t *wk, xfer_wino *cv, const float *dy, float *dx) {
    if (!cv->backward) return dnnl_invalid_arguments;
    dnnl_memory_t diff_dst = NULL, diff_src = NULL;
    dnnl_status_t s = bring_in(wk, &cv->bd_diff_dst_in, &cv->y_md, &cv->bd_diff_dst, dy, 0, &diff_dst);
    if (s == dnnl_success) {
        diff_src = result_memory(wk, &cv->bd_diff_src_out, &cv->x_md, &cv->bd_diff_src, dx, 1);
        if (!diff_src) s = dnnl_out_of_memory;
    }
    if (s == dnnl_success) {
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_WEIGHTS, cv->bd_weights},
                                   {DNNL_ARG_DIFF_SRC, diff_src}};
        s = run(wk, cv->bwd_data, &cv->bd_scratch, args, 3);
    }
    if (s == dnnl_success) s = take_out(wk, &cv->bd_diff_src_out, &cv->x_md, diff_src, dx);
    if (diff_dst) dnnl_memory_destroy(diff_dst);
    if (diff_src) dnnl_memory_destroy(diff_src);
    return s;
}

static dnnl_status_t backward_weights(worker_t *wk, xfer_wino *cv, const float *x, const float *dy, float *dkernel) {
    if (!cv->backward) return dnnl_invalid_arguments;
    dnnl_memory_t src = NULL, diff_dst = NULL, out = NULL;
    dnnl_status_t s = bring_in(wk, &cv->bw_src_in, &cv->x_md, &cv->bw_src, x, 0, &src);
    if (s == dnnl_success) s = bring_in(wk, &cv->bw_diff_dst_in, &cv->y_md, &cv->bw_diff_dst, dy, 1, &diff_dst);
    if (s == dnnl_success) {
        out = result_memory(wk, &cv->bw_diff_wei_out, &cv->w_md, &cv->bw_diff_wei, dkernel, 3);
        if (!out) s = dnnl_out_of_memory;
    }
    if (s == dnnl_success) {
        dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_DIFF_WEIGHTS, out}};
        s = run(wk, cv->bwd_weights, &cv->bw_scratch, args, 3);
    }
    if (s == dnnl_success) s = take_out(wk, &cv->bw_diff_wei_out, &cv->w_md, out, dkernel);
    if (src) dnnl_memory_destroy(src);
    if (diff_dst) dnnl_memory_destroy(diff_dst);
    if (out) dnnl_memory_destroy(out);
    return s;
}

int xfer_wino_forward(xfer_wino *cv, const float *x, const float *bias, float *y, int worker_index, void *scratch) {
    worker_t *wk = worker(worker_index, cv, scratch);
    return wk ? (int)forward(wk, cv, x, bias, y) : (int)dnnl_invalid_arguments;
}

int xfer_wino_backward_data(xfer_wino *cv, const float *dy, float *dx, int worker_index, void *scratch) {
    worker_t *wk = worker(worker_index, cv, scratch);
    return wk ? (int)backward_data(wk, cv, dy, dx) : (int)dnnl_invalid_arguments;
}

int xfer_wino_backward_weights(xfer_wino *cv, const float *x, const float *dy, float *dkernel, int worker_index,
                               void *scratch) {
    worker_t *wk = worker(worker_index, cv, scratch);
    return wk ? (int)backward_weights(wk, cv, x, dy, dkernel) : (int)dnnl_invalid_arguments;
}

// MARK: Direct convolution (forward, inference)
//
// src and dst are the engine's NHWC as they are (no reorders: oneDNN's jit_1x1, jit and jit_dw
// kernels take nhwc on AVX-512); only the weights live in the layout the primitive asks for
// (`any`), reordered once per kernel version. forward_inference: nothing is kept for a backward.

struct xfer_dconv {
    int with_bias;
    dnnl_memory_desc_t x_md, y_md, w_md, b_md;  // NHWC, NHWC, Keras's kernel, (o)
    dnnl_memory_desc_t wei, scratch;
    dnnl_primitive_t fwd;
    reorder_t wei_in;
    dnnl_memory_t weights;
    char implementation[64];
    size_t regions[4];  // only the scratchpad region (2) is used
};

// The post-ops: with `with_sum`, dst += the value already in it (a residual added in the
// primitive, before the activation); then the activation.
static dnnl_status_t dconv_attr(int activation, int with_sum, dnnl_primitive_attr_t *out) {
    *out = user_scratchpad;
    dnnl_alg_kind_t alg = dnnl_alg_kind_undef;
    float alpha = 0, beta = 0;
    switch (activation) {
    case XFER_ACT_NONE: if (!with_sum) return dnnl_success; break;
    case XFER_ACT_RELU: alg = dnnl_eltwise_relu; break;
    case XFER_ACT_RELU6: alg = dnnl_eltwise_clip; alpha = 0; beta = 6; break;
    case XFER_ACT_SWISH: alg = dnnl_eltwise_swish; alpha = 1; break;
    case XFER_ACT_SIGMOID: alg = dnnl_eltwise_logistic; break;
    case XFER_ACT_TANH: alg = dnnl_eltwise_tanh; break;
    default: return dnnl_invalid_arguments;
    }
    dnnl_post_ops_t ops;
    TRY(dnnl_primitive_attr_clone(out, user_scratchpad));
    dnnl_status_t s = dnnl_post_ops_create(&ops);
    if (s == dnnl_success) {
        if (with_sum) s = dnnl_post_ops_append_sum(ops, 1.0f);
        if (s == dnnl_success && alg != dnnl_alg_kind_undef) s = dnnl_post_ops_append_eltwise(ops, 1.0f, alg, alpha, beta);
        if (s == dnnl_success) s = dnnl_primitive_attr_set_post_ops(*out, ops);
        dnnl_post_ops_destroy(ops);
    }
    if (s != dnnl_success) {
        dnnl_primitive_attr_destroy(*out);
        *out = user_scratchpad;
    }
    return s;
}

static dnnl_status_t dconv_make(xfer_dconv *cv, int64_t groups, int activation, int with_sum, int64_t n, int64_t h, int64_t w,
                                int64_t c, int64_t o, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t dh,
                                int64_t dw, int64_t oh, int64_t ow, int64_t pt, int64_t pl, int64_t pb, int64_t pr) {
    dnnl_dims_t xd = {n, c, h, w}, yd = {n, o, oh, ow}, bd = {o};
    dnnl_dims_t strides = {sh, sw}, dilates = {dh - 1, dw - 1}, pad_l = {pt, pl}, pad_r = {pb, pr};
    TRY(dnnl_memory_desc_init_by_tag(&cv->x_md, 4, xd, dnnl_f32, dnnl_nhwc));
    TRY(dnnl_memory_desc_init_by_tag(&cv->y_md, 4, yd, dnnl_f32, dnnl_nhwc));
    TRY(dnnl_memory_desc_init_by_tag(&cv->b_md, 1, bd, dnnl_f32, dnnl_x));
    dnnl_memory_desc_t any_w;
    if (groups > 1) {
        // (g, oc, ic, kh, kw) = (G, O/G, C/G, kh, kw) over Keras's (kh, kw, C/G, O), output channel
        // g·(O/G) + oc; a depthwise kernel (kh, kw, C, M) is the case G = C, C/G = 1, O/G = M.
        int64_t og = o / groups, cg = c / groups;
        dnnl_dims_t wd = {groups, og, cg, kh, kw};
        dnnl_dims_t ws = {og, 1, o, kw * cg * o, cg * o};
        TRY(dnnl_memory_desc_init_by_strides(&cv->w_md, 5, wd, dnnl_f32, ws));
        TRY(dnnl_memory_desc_init_by_tag(&any_w, 5, wd, dnnl_f32, dnnl_format_tag_any));
    } else {
        dnnl_dims_t wd = {o, c, kh, kw};
        TRY(dnnl_memory_desc_init_by_tag(&cv->w_md, 4, wd, dnnl_f32, dnnl_hwio));
        TRY(dnnl_memory_desc_init_by_tag(&any_w, 4, wd, dnnl_f32, dnnl_format_tag_any));
    }
    dnnl_convolution_desc_t fd;
    TRY(dnnl_dilated_convolution_forward_desc_init(&fd, dnnl_forward_inference, dnnl_convolution_direct, &cv->x_md,
                                                   &any_w, cv->with_bias ? &cv->b_md : NULL, &cv->y_md, strides,
                                                   dilates, pad_l, pad_r));
    dnnl_primitive_attr_t attr;
    TRY(dconv_attr(activation, with_sum, &attr));
    dnnl_primitive_desc_t pd;
    dnnl_status_t s = dnnl_primitive_desc_create(&pd, &fd, attr, engine, NULL);
    if (attr != user_scratchpad) dnnl_primitive_attr_destroy(attr);
    TRY(s);
    const char *impl = "";
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    snprintf(cv->implementation, sizeof cv->implementation, "%s", impl);
    copy_md(&cv->wei, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0));
    copy_md(&cv->scratch, dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0));
    s = dnnl_primitive_create(&cv->fwd, pd);
    dnnl_primitive_desc_destroy(pd);
    TRY(s);
    TRY(make_reorder(&cv->w_md, &cv->wei, &cv->wei_in));
    TRY(dnnl_memory_create(&cv->weights, &cv->wei, engine, DNNL_MEMORY_ALLOCATE));
    cv->regions[2] = aligned(dnnl_memory_desc_get_size(&cv->scratch));
    if (cv->wei_in.p) cv->regions[2] = max_size(cv->regions[2], aligned(dnnl_memory_desc_get_size(&cv->wei_in.scratch)));
    return dnnl_success;
}

xfer_dconv *xfer_dconv_create(int64_t groups, int with_bias, int with_sum, int activation, int64_t n, int64_t h, int64_t w,
                              int64_t c, int64_t o, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                              int64_t dh, int64_t dw, int64_t oh, int64_t ow, int64_t pad_top,
                              int64_t pad_left, int64_t pad_bottom, int64_t pad_right, char *why, int why_size) {
    pthread_once(&engine_once, make_engine);
    if (engine_status != dnnl_success) {
        if (why) snprintf(why, why_size, "oneDNN has no CPU engine (status %d)", (int)engine_status);
        return NULL;
    }
    if (groups < 1 || c % groups != 0 || o % groups != 0) {
        if (why) snprintf(why, why_size, "%lld groups do not divide %lld channels and %lld filters", (long long)groups,
                          (long long)c, (long long)o);
        return NULL;
    }
    xfer_dconv *cv = calloc(1, sizeof *cv);
    if (!cv) return NULL;
    cv->with_bias = with_bias != 0;
    dnnl_status_t s = dconv_make(cv, groups, activation, with_sum, n, h, w, c, o, kh, kw, sh, sw, dh, dw, oh, ow, pad_top,
                                 pad_left, pad_bottom, pad_right);
    if (s != dnnl_success) {
        if (why) {
            if (s == dnnl_unimplemented) snprintf(why, why_size, "oneDNN has no direct convolution for this shape on this CPU");
            else snprintf(why, why_size, "oneDNN refused it (status %d)", (int)s);
        }
        xfer_dconv_destroy(cv);
        return NULL;
    }
    return cv;
}

void xfer_dconv_destroy(xfer_dconv *cv) {
    if (!cv) return;
    if (cv->fwd) dnnl_primitive_destroy(cv->fwd);
    if (cv->wei_in.p) dnnl_primitive_destroy(cv->wei_in.p);
    if (cv->weights) dnnl_memory_destroy(cv->weights);
    free(cv);
}

const char *xfer_dconv_implementation(const xfer_dconv *cv) { return cv->implementation; }

size_t xfer_dconv_scratch_bytes(const xfer_dconv *cv) { return cv->regions[2]; }

int xfer_dconv_set_kernel(xfer_dconv *cv, const float *kernel, int worker_index, void *scratch) {
    worker_t *wk = worker_with(worker_index, cv->regions, scratch);
    if (!wk) return (int)dnnl_invalid_arguments;
    if (!cv->wei_in.p) {
        void *data = NULL;
        TRY(dnnl_memory_get_data_handle(cv->weights, &data));
        memcpy(data, kernel, dnnl_memory_desc_get_size(&cv->wei));
        return (int)dnnl_success;
    }
    dnnl_memory_t from = wrap(&cv->w_md, kernel);
    if (!from) return (int)dnnl_out_of_memory;
    dnnl_status_t s = run_reorder(wk, &cv->wei_in, from, cv->weights);
    dnnl_memory_destroy(from);
    return (int)s;
}

int xfer_dconv_forward(xfer_dconv *cv, const float *x, const float *bias, float *y, int worker_index, void *scratch) {
    worker_t *wk = worker_with(worker_index, cv->regions, scratch);
    if (!wk) return (int)dnnl_invalid_arguments;
    dnnl_memory_t src = wrap(&cv->x_md, x), dst = wrap(&cv->y_md, y), b = NULL;
    dnnl_status_t s = src && dst ? dnnl_success : dnnl_out_of_memory;
    if (s == dnnl_success && cv->with_bias && !(b = wrap(&cv->b_md, bias))) s = dnnl_out_of_memory;
    if (s == dnnl_success) {
        dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, cv->weights}, {DNNL_ARG_DST, dst},
                                   {DNNL_ARG_BIAS, b}};
        s = run(wk, cv->fwd, &cv->scratch, args, b ? 4 : 3);
    }
    if (b) dnnl_memory_destroy(b);
    if (src) dnnl_memory_destroy(src);
    if (dst) dnnl_memory_destroy(dst);
    return (int)s;
}
