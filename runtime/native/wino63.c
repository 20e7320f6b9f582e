/* 3x3 stride-1 convolution by Winograd's F(6x6, 3x3), fused with bias and an activation.
 *
 * Built and loaded by posebridge.runtime.native_winograd, which inserts the generated transforms
 * (bt8: B^T over 8 vectors, at8: A^T from 8 vectors to 6) at the marker below.
 *
 * Layouts (float32):
 *   x  NHWC input of one image, [H][W][ldx]: Cin channels per pixel, pixels ldx floats apart (ldx >= Cin)
 *   V  transformed filters G w G^T, packed [64 positions][Np / 32][Kp][32]
 *      (Kp = Cin rounded up to 16, Np = Cout rounded up to 32, zeros in the padding)
 *   y  NHWC output of one image, [Ho][Wo][ldy] (ldy >= Cout: a channel slice of a wider buffer,
 *      such as a Concat's), Ho = H + 2 pad_h - 2, Wo = W + 2 pad_w - 2
 *
 * Each thread takes blocks of TB output tiles (6x6 each): it transforms their 8x8 input tiles
 * into U [64][TB][Kp] (zero padding read outside the image), multiplies U by V per position
 * into M [64][TB][Np] (a 12 x 32 register block per step), and transforms M back into the
 * output, adding the bias and applying the activation. U and M stay in the thread's cache.
 */
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

/* @TRANSFORMS@ */

#define TB 8          /* output tiles per block (rows of the register block) */
#define NB 32         /* output channels per register block */
#define ACT_NONE 0
#define ACT_RELU 1
#define ACT_PRELU 2

int wino63_abi(void) { return 2; }

static inline int ceil_div(int a, int b) { return (a + b - 1) / b; }

static inline __mmask16 lane_mask(int left) {
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (left > 0 ? left : 0)) - 1u);
}

static void input_tiles(const float *x, int H, int W, int Cin, int ldx, int Kp, int pad_h, int pad_w,
                        int tiles_w, int t0, int T, float *U)
{
    for (int t = 0; t < T; t++) {
        const int y0 = ((t0 + t) / tiles_w) * 6 - pad_h, x0 = ((t0 + t) % tiles_w) * 6 - pad_w;
        for (int k = 0; k < Kp; k += 16) {
            const __mmask16 mask = lane_mask(Cin - k);
            __m512 d[8][8], r[8][8], column[8], out[8];
            for (int i = 0; i < 8; i++) {
                const int yy = y0 + i;
                for (int j = 0; j < 8; j++) {
                    const int xx = x0 + j;
                    d[i][j] = (yy >= 0 && yy < H && xx >= 0 && xx < W)
                        ? _mm512_maskz_loadu_ps(mask, x + ((size_t)yy * W + xx) * ldx + k)
                        : _mm512_setzero_ps();
                }
            }
            for (int j = 0; j < 8; j++) {
                for (int i = 0; i < 8; i++) column[i] = d[i][j];
                bt8(column, out);
                for (int i = 0; i < 8; i++) r[i][j] = out[i];
            }
            for (int a = 0; a < 8; a++) {
                bt8(r[a], out);
                for (int b = 0; b < 8; b++)
                    _mm512_store_ps(U + ((size_t)(a * 8 + b) * TB + t) * Kp + k, out[b]);
            }
        }
    }
}

static void products(const float *U, const float *V, float *M, int Kp, int Np)
{
    const int blocks = Np / NB;
    for (int p = 0; p < 64; p++) {
        const float *Up = U + (size_t)p * TB * Kp;
        for (int cb = 0; cb < blocks; cb++) {
            const float *Vb = V + ((size_t)p * blocks + cb) * Kp * NB;
            __m512 c0[TB], c1[TB];
            for (int r = 0; r < TB; r++) { c0[r] = _mm512_setzero_ps(); c1[r] = _mm512_setzero_ps(); }
            for (int k = 0; k < Kp; k++) {
                const __m512 v0 = _mm512_loadu_ps(Vb + (size_t)k * NB), v1 = _mm512_loadu_ps(Vb + (size_t)k * NB + 16);
                for (int r = 0; r < TB; r++) {
                    const __m512 a = _mm512_set1_ps(Up[(size_t)r * Kp + k]);
                    c0[r] = _mm512_fmadd_ps(a, v0, c0[r]);
                    c1[r] = _mm512_fmadd_ps(a, v1, c1[r]);
                }
            }
            float *Mb = M + (size_t)p * TB * Np + cb * NB;
            for (int r = 0; r < TB; r++) {
                _mm512_store_ps(Mb + (size_t)r * Np, c0[r]);
                _mm512_store_ps(Mb + (size_t)r * Np + 16, c1[r]);
            }
        }
    }
}

static void output_tiles(const float *M, int Np, int Cout, int ldy, int Ho, int Wo, int tiles_w, int t0, int T,
                         const float *bias, int activation, const float *slope, float *y)
{
    const __m512 zero = _mm512_setzero_ps();
    for (int t = 0; t < T; t++) {
        const int oy0 = ((t0 + t) / tiles_w) * 6, ox0 = ((t0 + t) % tiles_w) * 6;
        for (int co = 0; co < Cout; co += 16) {
            const __mmask16 mask = lane_mask(Cout - co);
            __m512 m[8][8], r[6][8], column[8], out[6];
            for (int a = 0; a < 8; a++)
                for (int b = 0; b < 8; b++)
                    m[a][b] = _mm512_load_ps(M + ((size_t)(a * 8 + b) * TB + t) * Np + co);
            for (int b = 0; b < 8; b++) {
                for (int a = 0; a < 8; a++) column[a] = m[a][b];
                at8(column, out);
                for (int i = 0; i < 6; i++) r[i][b] = out[i];
            }
            const __m512 bv = bias ? _mm512_maskz_loadu_ps(mask, bias + co) : zero;
            const __m512 sv = activation == ACT_PRELU ? _mm512_maskz_loadu_ps(mask, slope + co) : zero;
            for (int i = 0; i < 6 && oy0 + i < Ho; i++) {
                at8(r[i], out);
                for (int j = 0; j < 6 && ox0 + j < Wo; j++) {
                    __m512 v = _mm512_add_ps(out[j], bv);
                    if (activation == ACT_RELU)
                        v = _mm512_max_ps(zero, v);                     /* NaN stays NaN */
                    else if (activation == ACT_PRELU)
                        v = _mm512_mask_mul_ps(v, _mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ), v, sv);
                    _mm512_mask_storeu_ps(y + ((size_t)(oy0 + i) * Wo + ox0 + j) * ldy + co, mask, v);
                }
            }
        }
    }
}

/* Returns 0, or -1 when a buffer could not be allocated (y is then incomplete). */
int wino63_forward(const float *x, int H, int W, int Cin, int ldx, int pad_h, int pad_w,
                   const float *V, int Cout, const float *bias, int activation, const float *slope,
                   float *y, int ldy, int threads)
{
    const int Ho = H + 2 * pad_h - 2, Wo = W + 2 * pad_w - 2;
    if (Ho <= 0 || Wo <= 0) return 0;
    const int tiles_w = ceil_div(Wo, 6), total = ceil_div(Ho, 6) * tiles_w;
    const int Kp = ceil_div(Cin, 16) * 16, Np = ceil_div(Cout, NB) * NB;
    const int blocks = ceil_div(total, TB);
    int failed = 0;
    #pragma omp parallel num_threads(threads > 0 ? threads : 1)
    {
        float *U = aligned_alloc(64, (size_t)64 * TB * Kp * sizeof(float));
        float *M = aligned_alloc(64, (size_t)64 * TB * Np * sizeof(float));
        if (!U || !M) {
            #pragma omp atomic write
            failed = 1;
        } else {
            memset(U, 0, (size_t)64 * TB * Kp * sizeof(float));  /* tiles past the end stay zero */
        }
        #pragma omp for schedule(static)
        for (int block = 0; block < blocks; block++) {
            if (!U || !M) continue;
            const int t0 = block * TB, T = total - t0 < TB ? total - t0 : TB;
            input_tiles(x, H, W, Cin, ldx, Kp, pad_h, pad_w, tiles_w, t0, T, U);
            products(U, V, M, Kp, Np);
            output_tiles(M, Np, Cout, ldy, Ho, Wo, tiles_w, t0, T, bias, activation, slope, y);
        }
        free(U);
        free(M);
    }
    return failed ? -1 : 0;
}
