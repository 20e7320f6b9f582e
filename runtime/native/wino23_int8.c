/* 3x3 stride-1 convolution by Winograd's F(2x2, 3x3) with int8 products (AVX-512 VNNI),
 * fused with bias and an activation.
 *
 * Transforms (Lavin and Gray 2016): B^T = [[1,0,-1,0],[0,1,1,0],[0,-1,1,0],[0,1,0,-1]],
 * G = [[1,0,0],[1/2,1/2,1/2],[1/2,-1/2,1/2],[0,0,1]], A^T = [[1,1,1,0],[0,1,-1,-1]]; their
 * entries are 0 and +-1 in B^T and A^T, so the transforms add no rounding of their own and
 * int8 keeps about the direct form's accuracy (F(4,3) and F(6,3) would multiply it by 20-40).
 *
 * Layouts:
 *   x    NHWC float32 input of one image, [H][W][ldx]: Cin channels per pixel, pixels ldx floats apart
 *   V    int8 transformed filters round(G w G^T / sv), [16][Np/32][Kp/4][32 co][4 k]
 *   sv   float32 [16][Np] filter scales (per position and output channel)
 *   comp int32 [16][Np] = 128 * sum_k V (the inputs are stored as uint8 with an offset of 128)
 *   y    NHWC float32 output, [Ho][Wo][ldy] (ldy >= Cout: a channel slice of a wider buffer)
 * Kp = Cin rounded up to 16, Np = Cout rounded up to 32.
 *
 * Each thread takes blocks of TB output tiles (2x2 each). It transforms their 4x4 input tiles in
 * float32 twice: once for the absmax of each of the 16 positions over the block (the scale is
 * absmax / 127, so the scales follow the data: no calibration), once to round them to uint8
 * with those scales (the second pass costs less than keeping the float32 tiles: they would not
 * stay in L1). Then, per group of 32 output channels, it multiplies with vpdpbusd into int32
 * accumulators that start at -comp, and transforms the 16 products of each tile back in float32
 * with the bias and activation while they are still in L1.
 */
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef TB
#define TB 12
#endif
#define NB 32

static inline int ceil_div(int a, int b) { return (a + b - 1) / b; }
static inline __mmask16 lane_mask(int left) {
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (left > 0 ? left : 0)) - 1u);
}

/* The 4x4 input tile (y0, x0) at channels k..k+15, transformed: u[a*4+b] = (B^T d B)[a][b]. */
static inline void tile_transform(const float *x, int H, int W, int Cin, int ldx, int y0, int x0, int k, __m512 *u)
{
    const __mmask16 mask = lane_mask(Cin - k);
    __m512 d[4][4], r[4][4];
    if (y0 >= 0 && y0 + 3 < H && x0 >= 0 && x0 + 3 < W) {
        const float *src = x + ((size_t)y0 * W + x0) * ldx + k;
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++)
                d[i][j] = _mm512_maskz_loadu_ps(mask, src + ((size_t)i * W + j) * ldx);
    } else {
        for (int i = 0; i < 4; i++) {
            const int yy = y0 + i;
            for (int j = 0; j < 4; j++) {
                const int xx = x0 + j;
                d[i][j] = (yy >= 0 && yy < H && xx >= 0 && xx < W)
                    ? _mm512_maskz_loadu_ps(mask, x + ((size_t)yy * W + xx) * ldx + k) : _mm512_setzero_ps();
            }
        }
    }
    for (int j = 0; j < 4; j++) {
        r[0][j] = _mm512_sub_ps(d[0][j], d[2][j]);
        r[1][j] = _mm512_add_ps(d[1][j], d[2][j]);
        r[2][j] = _mm512_sub_ps(d[2][j], d[1][j]);
        r[3][j] = _mm512_sub_ps(d[1][j], d[3][j]);
    }
    for (int a = 0; a < 4; a++) {
        u[a * 4 + 0] = _mm512_sub_ps(r[a][0], r[a][2]);
        u[a * 4 + 1] = _mm512_add_ps(r[a][1], r[a][2]);
        u[a * 4 + 2] = _mm512_sub_ps(r[a][2], r[a][1]);
        u[a * 4 + 3] = _mm512_sub_ps(r[a][1], r[a][3]);
    }
}

/* Two passes over the block's input tiles: the absmax of each of the 16 positions (the block's
 * scales), then the transform again, rounded to uint8 with offset 128: Uq [16][TB][Kp]. */
static void input_tiles(const float *x, int H, int W, int Cin, int ldx, int Kp, int pad_h, int pad_w,
                        int tiles_w, int t0, int T, uint8_t *Uq, float *su)
{
    __m512 mx[16], u[16];
    for (int p = 0; p < 16; p++) mx[p] = _mm512_setzero_ps();
    for (int t = 0; t < T; t++) {
        const int y0 = ((t0 + t) / tiles_w) * 2 - pad_h, x0 = ((t0 + t) % tiles_w) * 2 - pad_w;
        for (int k = 0; k < Kp; k += 16) {
            tile_transform(x, H, W, Cin, ldx, y0, x0, k, u);
            for (int p = 0; p < 16; p++) mx[p] = _mm512_range_ps(mx[p], u[p], 0x0B);  /* max(|mx|, |u|) */
        }
    }
    __m512 inv[16];
    for (int p = 0; p < 16; p++) {
        const float amax = _mm512_reduce_max_ps(mx[p]);
        su[p] = amax / 127.0f;
        inv[p] = _mm512_set1_ps(amax > 0 ? 127.0f / amax : 0.0f);
    }
    const __m512 off = _mm512_set1_ps(128.0f);
    for (int t = 0; t < T; t++) {
        const int y0 = ((t0 + t) / tiles_w) * 2 - pad_h, x0 = ((t0 + t) % tiles_w) * 2 - pad_w;
        for (int k = 0; k < Kp; k += 16) {
            tile_transform(x, H, W, Cin, ldx, y0, x0, k, u);
            for (int p = 0; p < 16; p++) {
                const __m512i q = _mm512_cvtps_epi32(_mm512_fmadd_ps(u[p], inv[p], off));  /* nearest even */
                _mm_store_si128((__m128i *)(Uq + ((size_t)p * TB + t) * Kp + k), _mm512_cvtusepi32_epi8(q));
            }
        }
    }
}

/* Products of one block of 32 output channels (cb) at one position p:
 * M[r][0..31] = sum_k Uq[p][r][k] * V[p][cb][k][.] - comp[p][cb*32 + .], int32, for TB rows. */
static inline void products(const uint8_t *Up, const int8_t *Vb, const int32_t *cp, int Kp, int32_t *M)
{
    __m512i c0[TB], c1[TB];
    const __m512i n0 = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_loadu_si512(cp));
    const __m512i n1 = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_loadu_si512(cp + 16));
    #pragma GCC unroll 16
    for (int r = 0; r < TB; r++) { c0[r] = n0; c1[r] = n1; }
    for (int k = 0; k < Kp; k += 4) {
        const __m512i v0 = _mm512_loadu_si512(Vb + (size_t)k * NB), v1 = _mm512_loadu_si512(Vb + (size_t)k * NB + 64);
        /* unrolled, so that the 2 x TB accumulators stay in registers (GCC does not always unroll it) */
        #pragma GCC unroll 16
        for (int r = 0; r < TB; r++) {
            const __m512i a = _mm512_set1_epi32(*(const int32_t *)(Up + (size_t)r * Kp + k));
            c0[r] = _mm512_dpbusd_epi32(c0[r], a, v0);
            c1[r] = _mm512_dpbusd_epi32(c1[r], a, v1);
        }
    }
    #pragma GCC unroll 16
    for (int r = 0; r < TB; r++) {
        _mm512_store_si512(M + (size_t)r * NB, c0[r]);
        _mm512_store_si512(M + (size_t)r * NB + 16, c1[r]);
    }
}

/* M: [16][TB][32] int32 products of output channels co0..co0+31 (offsets compensated);
 * S: [16][32] float32 = s_u[p] * s_v[p][co]. */
static void output_tiles(const int32_t *M, const float *S, int co0, int Cout, int ldy, int Ho, int Wo, int tiles_w,
                         int t0, int T, const float *bias, int activation, const float *slope, float *y)
{
    const __m512 zero = _mm512_setzero_ps();
    for (int half = 0; half < 2 && co0 + half * 16 < Cout; half++) {
        const int co = co0 + half * 16;
        const __mmask16 mask = lane_mask(Cout - co);
        const __m512 bv = bias ? _mm512_maskz_loadu_ps(mask, bias + co) : zero;
        const __m512 sl = activation == 2 ? _mm512_maskz_loadu_ps(mask, slope + co) : zero;
        for (int t = 0; t < T; t++) {
            const int oy0 = ((t0 + t) / tiles_w) * 2, ox0 = ((t0 + t) % tiles_w) * 2;
            __m512 m[16];
            for (int p = 0; p < 16; p++)
                m[p] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_load_si512(M + ((size_t)p * TB + t) * NB + half * 16)),
                                     _mm512_load_ps(S + p * NB + half * 16));
            __m512 r0[4], r1[4];
            for (int b = 0; b < 4; b++) {
                r0[b] = _mm512_add_ps(_mm512_add_ps(m[0 * 4 + b], m[1 * 4 + b]), m[2 * 4 + b]);
                r1[b] = _mm512_sub_ps(_mm512_sub_ps(m[1 * 4 + b], m[2 * 4 + b]), m[3 * 4 + b]);
            }
            __m512 out[2][2];
            out[0][0] = _mm512_add_ps(_mm512_add_ps(r0[0], r0[1]), r0[2]);
            out[0][1] = _mm512_sub_ps(_mm512_sub_ps(r0[1], r0[2]), r0[3]);
            out[1][0] = _mm512_add_ps(_mm512_add_ps(r1[0], r1[1]), r1[2]);
            out[1][1] = _mm512_sub_ps(_mm512_sub_ps(r1[1], r1[2]), r1[3]);
            for (int i = 0; i < 2 && oy0 + i < Ho; i++)
                for (int j = 0; j < 2 && ox0 + j < Wo; j++) {
                    __m512 v = _mm512_add_ps(out[i][j], bv);
                    if (activation == 1) v = _mm512_max_ps(zero, v);
                    else if (activation == 2) v = _mm512_mask_mul_ps(v, _mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ), v, sl);
                    _mm512_mask_storeu_ps(y + ((size_t)(oy0 + i) * Wo + ox0 + j) * ldy + co, mask, v);
                }
        }
    }
}

int wino23_int8_abi(void) { return 2; }

/* Returns 0, or -1 when a buffer could not be allocated. */
int wino23_int8_forward(const float *x, int H, int W, int Cin, int ldx, int pad_h, int pad_w,
                  const int8_t *V, const float *sv, const int32_t *comp, int Cout,
                  const float *bias, int activation, const float *slope, float *y, int ldy, int threads)
{
    const int Ho = H + 2 * pad_h - 2, Wo = W + 2 * pad_w - 2;
    if (Ho <= 0 || Wo <= 0) return 0;
    const int tiles_w = ceil_div(Wo, 2), total = ceil_div(Ho, 2) * tiles_w;
    const int Kp = ceil_div(Cin, 16) * 16, Np = ceil_div(Cout, NB) * NB;
    const int blocks = ceil_div(total, TB);
    int failed = 0;
    #pragma omp parallel num_threads(threads > 0 ? threads : 1)
    {
        uint8_t *Uq = aligned_alloc(64, (size_t)16 * TB * Kp);
        int32_t *M = aligned_alloc(64, (size_t)16 * TB * NB * 4);
        if (!Uq || !M) {
            #pragma omp atomic write
            failed = 1;
        } else {
            memset(Uq, 0, (size_t)16 * TB * Kp);  /* rows past the last tile of a block: defined values */
        }
        #pragma omp for schedule(static)
        for (int block = 0; block < blocks; block++) {
            if (!Uq || !M) continue;
            const int t0 = block * TB, T = total - t0 < TB ? total - t0 : TB;
            float su[16];
            __attribute__((aligned(64))) float S[16 * NB];
            input_tiles(x, H, W, Cin, ldx, Kp, pad_h, pad_w, tiles_w, t0, T, Uq, su);
            for (int cb = 0; cb < Np / NB; cb++) {
                for (int p = 0; p < 16; p++) {
                    products(Uq + (size_t)p * TB * Kp, V + ((size_t)p * (Np / NB) + cb) * Kp * NB,
                             comp + (size_t)p * Np + cb * NB, Kp, M + (size_t)p * TB * NB);
                    const __m512 s = _mm512_set1_ps(su[p]);
                    _mm512_store_ps(S + p * NB, _mm512_mul_ps(s, _mm512_loadu_ps(sv + (size_t)p * Np + cb * NB)));
                    _mm512_store_ps(S + p * NB + 16, _mm512_mul_ps(s, _mm512_loadu_ps(sv + (size_t)p * Np + cb * NB + 16)));
                }
                output_tiles(M, S, cb * NB, Cout, ldy, Ho, Wo, tiles_w, t0, T, bias, activation, slope, y);
            }
        }
        free(Uq); free(M);
    }
    return failed ? -1 : 0;
}

/* 1x1 stride-1 convolution without padding, int8 products: a pixel is a "tile" of one position.
 * V: [1][Np/32][Kp/4][32][4] int8; sv, comp: [Np]. One input scale per block of TB pixels. */
int pointwise_int8_forward(const float *x, int pixels, int Cin, int ldx, const int8_t *V, const float *sv,
                           const int32_t *comp, int Cout, const float *bias, int activation,
                           const float *slope, float *y, int ldy, int threads)
{
    const int Kp = ceil_div(Cin, 16) * 16, Np = ceil_div(Cout, NB) * NB;
    const int blocks = ceil_div(pixels, TB);
    int failed = 0;
    #pragma omp parallel num_threads(threads > 0 ? threads : 1)
    {
        uint8_t *Uq = aligned_alloc(64, (size_t)TB * Kp);
        int32_t *M = aligned_alloc(64, (size_t)TB * NB * 4);
        if (!Uq || !M) {
            #pragma omp atomic write
            failed = 1;
        } else {
            memset(Uq, 0, (size_t)TB * Kp);
        }
        const __m512 zero = _mm512_setzero_ps();
        #pragma omp for schedule(static)
        for (int block = 0; block < blocks; block++) {
            if (!Uq || !M) continue;
            const int t0 = block * TB, T = pixels - t0 < TB ? pixels - t0 : TB;
            __m512 mx = zero;
            for (int t = 0; t < T; t++)
                for (int k = 0; k < Kp; k += 16)
                    mx = _mm512_range_ps(mx, _mm512_maskz_loadu_ps(lane_mask(Cin - k), x + (size_t)(t0 + t) * ldx + k), 0x0B);
            const float amax = _mm512_reduce_max_ps(mx);
            const float su = amax / 127.0f;
            const __m512 inv = _mm512_set1_ps(amax > 0 ? 127.0f / amax : 0.0f), off = _mm512_set1_ps(128.0f);
            for (int t = 0; t < T; t++)
                for (int k = 0; k < Kp; k += 16) {
                    const __m512 v = _mm512_maskz_loadu_ps(lane_mask(Cin - k), x + (size_t)(t0 + t) * ldx + k);
                    const __m512i q = _mm512_cvtps_epi32(_mm512_fmadd_ps(v, inv, off));
                    _mm_store_si128((__m128i *)(Uq + (size_t)t * Kp + k), _mm512_cvtusepi32_epi8(q));
                }
            for (int cb = 0; cb < Np / NB; cb++) {
                products(Uq, V + (size_t)cb * Kp * NB, comp + cb * NB, Kp, M);
                for (int co = cb * NB; co < Cout && co < cb * NB + NB; co += 16) {
                    const __mmask16 mask = lane_mask(Cout - co);
                    const __m512 scale = _mm512_mul_ps(_mm512_set1_ps(su), _mm512_loadu_ps(sv + co));
                    const __m512 bv = bias ? _mm512_maskz_loadu_ps(mask, bias + co) : zero;
                    for (int t = 0; t < T; t++) {
                        __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_load_si512(M + (size_t)t * NB + co - cb * NB)), scale);
                        v = _mm512_add_ps(v, bv);
                        if (activation == 1) v = _mm512_max_ps(zero, v);
                        else if (activation == 2)
                            v = _mm512_mask_mul_ps(v, _mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ), v, _mm512_maskz_loadu_ps(mask, slope + co));
                        _mm512_mask_storeu_ps(y + (size_t)(t0 + t) * ldy + co, mask, v);
                    }
                }
            }
        }
        free(Uq); free(M);
    }
    return failed ? -1 : 0;
}
