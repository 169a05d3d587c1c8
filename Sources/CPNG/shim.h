// libpng (Debian: libpng-dev, pkg-config libpng). Only Sources/XferKit/Data/PNGDecoder.swift
// imports this module.
//
// libpng reports errors by longjmp. Swift must never be unwound by longjmp, so the whole
// read -- setjmp, every libpng call that can fail, and the cleanup -- lives in the one C
// function below; Swift sees a plain return code and a message.
//
// Why not libpng's simplified API (png_image_*), which needs no setjmp: it converts to sRGB
// using the file's gAMA chunk, treats 16-bit files as linear light and composites alpha on a
// background. TensorFlow's decode_png (and so Keras) does none of that: it ignores gAMA, keeps
// the high byte of 16-bit samples and simply drops alpha. The transformations below are the
// ones tensorflow/core/lib/png/png_io.cc (CommonInitDecode) asks for with channels=1, 3 or 4, 8 bits.
#ifndef XFER_CPNG_SHIM_H
#define XFER_CPNG_SHIM_H
#include <png.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    const unsigned char *data;
    size_t size;
    size_t offset;
    char *message;
    size_t message_size;
} xfer_png_reader;

static inline void xfer_png_set_message(xfer_png_reader *reader, const char *text) {
    if (reader->message_size == 0) return;
    strncpy(reader->message, text, reader->message_size - 1);
    reader->message[reader->message_size - 1] = '\0';
}

static inline void xfer_png_read_bytes(png_structp png, png_bytep out, size_t length) {
    xfer_png_reader *reader = (xfer_png_reader *)png_get_io_ptr(png);
    if (reader->size - reader->offset < length) {
        memset(out, 0, length);
        png_error(png, "file ends early (truncated)");
    }
    memcpy(out, reader->data + reader->offset, length);
    reader->offset += length;
}

static inline void xfer_png_on_error(png_structp png, png_const_charp text) {
    xfer_png_set_message((xfer_png_reader *)png_get_error_ptr(png), text);
    png_longjmp(png, 1);
}

// Warnings (bad CRC in an ancillary chunk, unknown sRGB profile, ...) do not stop TensorFlow
// either; they are dropped so nothing reaches stderr.
static inline void xfer_png_on_warning(png_structp png, png_const_charp text) {
    (void)png;
    (void)text;
}

/// Reads the PNG in `data` as 8-bit rows of `channels` samples per pixel (1: grey, 3: RGB,
/// 4: RGBA), `width * channels` bytes each, into `rgb` (capacity `rgb_capacity` bytes), as
/// TensorFlow's decode_png(channels=...) converts: grey from colour by libpng's rgb_to_gray
/// with the Rec. 601 weights TensorFlow gives (0.299, 0.587), alpha kept for 4 channels
/// (tRNS made alpha; when the file has none, TensorFlow's filler, see below) and dropped otherwise. With
/// `rgb == NULL` only the header is read and `width`/`height` are set. Returns 0 on success,
/// -1 with a message otherwise.
static inline int xfer_png_decode8(const void *data, size_t size, int channels,
                                   unsigned char *rgb, size_t rgb_capacity,
                                   uint32_t *width, uint32_t *height,
                                   char *message, size_t message_size) {
    xfer_png_reader reader = {(const unsigned char *)data, size, 0, message, message_size};
    if (message_size > 0) message[0] = '\0';
    if (size < 8 || png_sig_cmp((png_const_bytep)data, 0, 8) != 0) {
        xfer_png_set_message(&reader, "not a PNG file");
        return -1;
    }
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &reader,
                                             xfer_png_on_error, xfer_png_on_warning);
    if (png == NULL) {
        xfer_png_set_message(&reader, "out of memory");
        return -1;
    }
    png_infop info = png_create_info_struct(png);
    if (info == NULL) {
        png_destroy_read_struct(&png, NULL, NULL);
        xfer_png_set_message(&reader, "out of memory");
        return -1;
    }
    // `png` and `info` are not changed after this point, so they are valid after longjmp.
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    png_set_read_fn(png, &reader, xfer_png_read_bytes);
    png_read_info(png, info);

    png_uint_32 w = 0, h = 0;
    int bit_depth = 0, color_type = 0;
    png_get_IHDR(png, info, &w, &h, &bit_depth, &color_type, NULL, NULL, NULL);
    *width = w;
    *height = h;
    if (rgb == NULL) {
        png_destroy_read_struct(&png, &info, NULL);
        return 0;
    }
    if (channels != 1 && channels != 3 && channels != 4) {
        png_error(png, "unsupported channel count");
    }
    if ((size_t)w * (size_t)h * (size_t)channels > rgb_capacity) {
        png_error(png, "output buffer too small");
    }

    // The same requests, in the same order, as TensorFlow's CommonInitDecode.
    const int has_alpha = (color_type & PNG_COLOR_MASK_ALPHA) != 0;
    const int has_trns = png_get_valid(png, info, PNG_INFO_tRNS) != 0;
    if (channels == 4) {
        if (!has_alpha && has_trns) png_set_tRNS_to_alpha(png);
        // TensorFlow's filler is (1 << the file's bit depth) - 1: opaque for 8 and 16 bits, but
        // 1 for a 1-bit and 15 for a 4-bit file (Keras's loader gives those alphas; so does xfer).
        else if (!has_alpha) png_set_add_alpha(png, (png_uint_32)((1u << bit_depth) - 1), PNG_FILLER_AFTER);
    } else if (has_alpha || has_trns) {
        png_set_strip_alpha(png);
    }
    if (bit_depth > 8) png_set_strip_16(png);
    png_set_packing(png);
    const int passes = png_set_interlace_handling(png);
    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    const int is_gray = (color_type & PNG_COLOR_MASK_COLOR) == 0;
    if (is_gray && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (channels == 1) {
        if (!is_gray) png_set_rgb_to_gray(png, 1, 0.299, 0.587);
    } else if (is_gray) {
        png_set_gray_to_rgb(png);
    }
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * (size_t)channels) {
        png_error(png, "unexpected row layout after conversion");
    }

    const size_t stride = (size_t)w * (size_t)channels;
    for (int pass = 0; pass < passes; pass++) {
        for (png_uint_32 y = 0; y < h; y++) png_read_row(png, rgb + y * stride, NULL);
    }
    png_read_end(png, info);
    png_destroy_read_struct(&png, &info, NULL);
    return 0;
}

/// `xfer_png_decode8` with 3 channels: 8-bit RGB, as decode_png(channels=3).
static inline int xfer_png_decode_rgb8(const void *data, size_t size,
                                       unsigned char *rgb, size_t rgb_capacity,
                                       uint32_t *width, uint32_t *height,
                                       char *message, size_t message_size) {
    return xfer_png_decode8(data, size, 3, rgb, rgb_capacity, width, height, message, message_size);
}
#endif
