/* 3x3 convolution (stride 1, zero padding 1) by Winograd's minimal filtering F(2x2, 3x3)
 * (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016):
 * Y = A^T [(G g G^T) * (B^T d B)] A per 2x2 output tile, 16 multiplications per tile and
 * channel pair instead of 36. fp32, AVX-512; built and loaded by irnbench/ops/winograd.py.
 *
 * Layout: every input piece and the output are NHWC (a channels_last tensor's memory). The
 * pieces are read as one input whose C channels are their concatenation, so a densely
 * connected block never copies its earlier feature maps. U holds the transformed weights,
 * [16][Cp][Kp] with Cp = C and Kp = K rounded up to 16; padded outputs are zero.
 */
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#define TB 8 /* tiles per GEMM block: 2 x TB accumulators of 16 lanes */

typedef struct {
    const float* const* src; /* n pieces, each N x H x W x chans[i] */
    const int* chans;
    int n, H, W;
    const float* U;
    int C, Cp, Kp, K;
    const float* bias; /* K values or NULL */
    int leaky;
    float slope;
    float* dst; /* N x H x W x K */
} conv_args;

static inline __mmask16 lanes(int n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1); }

/* V[a][t][cofs .. cofs+15] = (B^T d B)[a] of tile t, for (up to) 16 channels of one piece */
static void input_transform(const float* const rows[4], const int colv[TB][4], int nt, int tx0,
                            int C, int c0, __mmask16 m, float* V, int Cp, int cofs) {
    for (int t = 0; t < nt; t++) {
        __m512 d[4][4], s[4][4];
        long col0 = 2L * (tx0 + t) - 1;
        for (int r = 0; r < 4; r++)
            for (int q = 0; q < 4; q++)
                d[r][q] = (rows[r] && colv[t][q])
                              ? _mm512_maskz_loadu_ps(m, rows[r] + (col0 + q) * C + c0)
                              : _mm512_setzero_ps();
        for (int q = 0; q < 4; q++) { /* B^T d */
            s[0][q] = _mm512_sub_ps(d[0][q], d[2][q]);
            s[1][q] = _mm512_add_ps(d[1][q], d[2][q]);
            s[2][q] = _mm512_sub_ps(d[2][q], d[1][q]);
            s[3][q] = _mm512_sub_ps(d[1][q], d[3][q]);
        }
        for (int r = 0; r < 4; r++) { /* (B^T d) B */
            float* v = V + ((long)(4 * r) * TB + t) * Cp + cofs;
            long step = (long)TB * Cp;
            _mm512_mask_storeu_ps(v, m, _mm512_sub_ps(s[r][0], s[r][2]));
            _mm512_mask_storeu_ps(v + step, m, _mm512_add_ps(s[r][1], s[r][2]));
            _mm512_mask_storeu_ps(v + 2 * step, m, _mm512_sub_ps(s[r][2], s[r][1]));
            _mm512_mask_storeu_ps(v + 3 * step, m, _mm512_sub_ps(s[r][1], s[r][3]));
        }
    }
}

/* M[a][t][0..31] = sum_{c < C} V[a][t][c] U[a][c][k0 .. k0+31], TB tiles */
static void gemm_k32(const float* V, const float* U, int C, int Cp, int Kp, int k0, float* M) {
    for (int a = 0; a < 16; a++) {
        const float* va = V + (long)a * TB * Cp;
        const float* ua = U + (long)a * Cp * Kp + k0;
        __m512 acc[TB][2];
        for (int t = 0; t < TB; t++) acc[t][0] = acc[t][1] = _mm512_setzero_ps();
        for (int c = 0; c < C; c++) {
            __m512 u0 = _mm512_loadu_ps(ua + (long)c * Kp);
            __m512 u1 = _mm512_loadu_ps(ua + (long)c * Kp + 16);
            for (int t = 0; t < TB; t++) {
                __m512 v = _mm512_set1_ps(va[(long)t * Cp + c]);
                acc[t][0] = _mm512_fmadd_ps(v, u0, acc[t][0]);
                acc[t][1] = _mm512_fmadd_ps(v, u1, acc[t][1]);
            }
        }
        for (int t = 0; t < TB; t++) {
            _mm512_store_ps(M + ((long)a * TB + t) * 32, acc[t][0]);
            _mm512_store_ps(M + ((long)a * TB + t) * 32 + 16, acc[t][1]);
        }
    }
}

/* the same for the last 16 outputs when Kp is not a multiple of 32 */
static void gemm_k16(const float* V, const float* U, int C, int Cp, int Kp, int k0, float* M) {
    for (int a = 0; a < 16; a++) {
        const float* va = V + (long)a * TB * Cp;
        const float* ua = U + (long)a * Cp * Kp + k0;
        __m512 acc[TB];
        for (int t = 0; t < TB; t++) acc[t] = _mm512_setzero_ps();
        for (int c = 0; c < C; c++) {
            __m512 u0 = _mm512_loadu_ps(ua + (long)c * Kp);
            for (int t = 0; t < TB; t++)
                acc[t] = _mm512_fmadd_ps(_mm512_set1_ps(va[(long)t * Cp + c]), u0, acc[t]);
        }
        for (int t = 0; t < TB; t++) _mm512_store_ps(M + ((long)a * TB + t) * 32, acc[t]);
    }
}

/* Y = A^T M A, plus bias, LeakyReLU; written to the tile's (up to) 2x2 output pixels */
static void output_transform(const conv_args* p, const float* M, float* dst, int nt, int ty,
                             int tx0, int k0, int kw) {
    __m512 slope = _mm512_set1_ps(p->slope);
    for (int t = 0; t < nt; t++) {
        for (int j = 0; j < kw; j += 16) {
            __mmask16 mk = lanes(p->K - (k0 + j));
            __m512 m[16], s[2][4];
            for (int a = 0; a < 16; a++) m[a] = _mm512_load_ps(M + ((long)a * TB + t) * 32 + j);
            for (int q = 0; q < 4; q++) {
                s[0][q] = _mm512_add_ps(_mm512_add_ps(m[q], m[4 + q]), m[8 + q]);
                s[1][q] = _mm512_sub_ps(_mm512_sub_ps(m[4 + q], m[8 + q]), m[12 + q]);
            }
            __m512 b = p->bias ? _mm512_maskz_loadu_ps(mk, p->bias + k0 + j) : _mm512_setzero_ps();
            for (int r = 0; r < 2; r++) {
                long y = 2L * ty + r, x = 2L * (tx0 + t);
                if (y >= p->H) break;
                __m512 o0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s[r][0], s[r][1]), s[r][2]), b);
                __m512 o1 = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(s[r][1], s[r][2]), s[r][3]), b);
                if (p->leaky) {
                    o0 = _mm512_max_ps(o0, _mm512_mul_ps(o0, slope));
                    o1 = _mm512_max_ps(o1, _mm512_mul_ps(o1, slope));
                }
                float* o = dst + (y * p->W + x) * p->K + k0 + j;
                _mm512_mask_storeu_ps(o, mk, o0);
                if (x + 1 < p->W) _mm512_mask_storeu_ps(o + p->K, mk, o1);
            }
        }
    }
}

/* One row of tiles of one image. */
static void tile_row(const conv_args* p, int img, int ty, float* V, float* M) {
    int tw = (p->W + 1) / 2;
    long hw = (long)p->H * p->W;
    float* dst = p->dst + img * hw * p->K;
    for (int tx0 = 0; tx0 < tw; tx0 += TB) {
        int nt = tw - tx0 < TB ? tw - tx0 : TB, colv[TB][4];
        for (int t = 0; t < TB; t++)
            for (int q = 0; q < 4; q++) {
                long col = 2L * (tx0 + t) - 1 + q;
                colv[t][q] = t < nt && col >= 0 && col < p->W;
            }
        if (nt < TB) memset(V, 0, sizeof(float) * 16 * TB * p->Cp);
        int cofs = 0;
        for (int i = 0; i < p->n; i++) {
            int C = p->chans[i];
            const float* base = p->src[i] + img * hw * C;
            const float* rows[4];
            for (int r = 0; r < 4; r++) {
                long row = 2L * ty - 1 + r;
                rows[r] = (row >= 0 && row < p->H) ? base + row * p->W * C : NULL;
            }
            for (int c0 = 0; c0 < C; c0 += 16)
                input_transform(rows, colv, nt, tx0, C, c0, lanes(C - c0), V, p->Cp, cofs + c0);
            cofs += C;
        }
        for (int k0 = 0; k0 < p->Kp; k0 += 32) {
            int kw = p->Kp - k0 < 32 ? p->Kp - k0 : 32;
            if (kw == 32) gemm_k32(V, p->U, p->C, p->Cp, p->Kp, k0, M);
            else gemm_k16(V, p->U, p->C, p->Cp, p->Kp, k0, M);
            output_transform(p, M, dst, nt, ty, tx0, k0, kw);
        }
    }
}

/* Every row of tiles of the batch, split over ``threads`` OpenMP threads (the runtime PyTorch
 * has loaded, so the kernel shares its thread pool). 0 on success. */
int irnbench_winograd_f23(int n, const float* const* src, const int* chans, int N, int H, int W,
                          const float* U, int Cp, int K, const float* bias, int leaky,
                          float slope, float* dst, int threads) {
    int C = 0;
    for (int i = 0; i < n; i++) C += chans[i];
    conv_args p = {src, chans, n, H, W, U, C, Cp, (K + 15) / 16 * 16, K, bias, leaky, slope, dst};
    long th = (H + 1) / 2, rows = (long)N * th;
    int failed = 0;
#pragma omp parallel num_threads(threads) reduction(|| : failed)
    {
        float* V = aligned_alloc(64, sizeof(float) * 16 * TB * Cp);
        float* M = aligned_alloc(64, sizeof(float) * 16 * TB * 32);
        failed = !V || !M;
#pragma omp for schedule(static)
        for (long r = 0; r < rows; r++)
            if (!failed) tile_row(&p, (int)(r / th), (int)(r % th), V, M);
        free(V);
        free(M);
    }
    return failed;
}
