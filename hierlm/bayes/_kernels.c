/* The engine posterior's density, gradient and exact draws, compiled when the
 * package is installed (hierlm.bayes.kernels loads them with ctypes).
 *
 * Written in C rather than numba: numba compiled these kernels at the first
 * engine posterior of a machine, 13 of the 16 s of a first `hierlm demo`
 * (profiled); compiled at install they cost nothing at run time.  The maths
 * is in hierlm/bayes/marginal.py's docstring.
 *
 * Every array is row-major and contiguous.  The model is one float64 buffer
 * (hierlm.bayes.marginal.EnginePosterior._buf):
 *   [total, levels, p1, R, q_rest, K, n, const, eta, size],
 *   A11 (levels, p1, p1), A1r (levels, p1, R), Arr (R, R),
 *   terms (K, 4: p_k, levels_k, offset in the rest, phi offset of the SDs),
 *   priors (K + 1, 6: kind, loc, scale, nu, log constant, rate), P0 (p), mu0 (p).
 * The same buffer is nutpie's user data, so the sampler runs these functions
 * on its own threads without Python: they are reentrant (each call allocates
 * its own workspace) and touch no Python object.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(_WIN32)
#define EXPORT __declspec(dllexport)
#else
#define EXPORT __attribute__((visibility("default")))
#endif

#define HEADER 10
/* prior kinds (hierlm.bayes.kernels.pack_prior) */
enum { FLAT, NORMAL, STUDENT, HALFNORMAL, HALFCAUCHY, EXPONENTIAL };

typedef struct {
    int64_t l1, p1, R, qr, K, p, size, pmax, ncmax;
    double n, cnst, eta;
    const double *A11, *A1r, *Arr, *priors, *P0, *mu0;
    const double *terms; /* K x 4, whole numbers held as floats in the buffer */
} Model;

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* Points the model's fields into the buffer (nothing is copied or allocated). */
static void read_model(const double *buf, Model *m) {
    m->l1 = (int64_t)buf[1];
    m->p1 = (int64_t)buf[2];
    m->R = (int64_t)buf[3];
    m->qr = (int64_t)buf[4];
    m->K = (int64_t)buf[5];
    m->n = buf[6];
    m->cnst = buf[7];
    m->eta = buf[8];
    m->size = (int64_t)buf[9];
    m->p = m->R - m->qr - 1;
    const double *o = buf + HEADER;
    m->A11 = o;
    o += m->l1 * m->p1 * m->p1;
    m->A1r = o;
    o += m->l1 * m->p1 * m->R;
    m->Arr = o;
    o += m->R * m->R;
    m->terms = o;
    m->pmax = 1;
    for (int64_t k = 0; k < m->K; k++) m->pmax = max64(m->pmax, (int64_t)o[4 * k]);
    m->ncmax = max64(1, m->pmax * (m->pmax - 1) / 2);
    o += 4 * m->K;
    m->priors = o;
    o += 6 * (m->K + 1);
    m->P0 = o;
    m->mu0 = o + m->p;
}

#define TP(k, c) ((int64_t)m->terms[4 * (k) + (c)])
/* per term arrays (K, pmax, pmax) and (K, pmax, pmax, ncmax) */
#define T3(A, k, i, j) ((A)[((k) * m->pmax + (i)) * m->pmax + (j)])
#define T4(A, k, i, j, e) ((A)[(((k) * m->pmax + (i)) * m->pmax + (j)) * m->ncmax + (e)])

/* (log density, derivative) at x of a prior row (kind, then its five numbers) */
static double prior(const double *row, double x, double *d) {
    int code = (int)row[0];
    double loc = row[1], scale = row[2], nu = row[3], c = row[4], lam = row[5];
    if (code == FLAT) {
        *d = 0.0;
        return 0.0;
    }
    if (code == EXPONENTIAL) {
        *d = -lam;
        return c - lam * x;
    }
    double z = (x - loc) / scale;
    if (code == STUDENT) {
        *d = -(nu + 1.0) * z / (scale * (nu + z * z));
        return c - 0.5 * (nu + 1.0) * log1p(z * z / nu);
    }
    if (code == HALFCAUCHY) {
        *d = -2.0 * z / (scale * (1.0 + z * z));
        return c - log1p(z * z);
    }
    *d = -z / scale; /* Normal, HalfNormal */
    return c - 0.5 * z * z;
}

/* Stan's cholesky_corr_constrain (hierlm.params.corr_cholesky) with forward
 * derivatives: Lc (p, p), dLc (p, p, nce) with nce = max(1, nc); dlogj and
 * drem are work vectors of nc; returns the log Jacobian, its gradient in dlogj. */
static double corr_cholesky(const double *w, int64_t p, double *Lc, double *dLc, double *dlogj, double *drem) {
    int64_t nc = p * (p - 1) / 2, nce = max64(1, nc);
#define LC(i, j) Lc[(i) * p + (j)]
#define DL(i, j, e) dLc[((i) * p + (j)) * nce + (e)]
    memset(Lc, 0, sizeof(double) * p * p);
    memset(dLc, 0, sizeof(double) * p * p * nce);
    LC(0, 0) = 1.0;
    double logj = 0.0;
    for (int64_t k = 0; k < nc; k++) {
        double z = tanh(w[k]);
        logj += log1p(-z * z);
        dlogj[k] = -2.0 * z;
    }
    int64_t k = 0;
    for (int64_t i = 1; i < p; i++) {
        double rem = 1.0;
        for (int64_t e = 0; e < nc; e++) drem[e] = 0.0;
        for (int64_t j = 0; j < i; j++) {
            double z = tanh(w[k]), sq = sqrt(rem);
            logj += 0.5 * log(rem);
            for (int64_t e = 0; e < nc; e++) {
                dlogj[e] += 0.5 * drem[e] / rem;
                DL(i, j, e) = z * drem[e] / (2.0 * sq);
            }
            DL(i, j, k) += (1.0 - z * z) * sq;
            LC(i, j) = z * sq;
            rem -= LC(i, j) * LC(i, j);
            for (int64_t e = 0; e < nc; e++) drem[e] -= 2.0 * LC(i, j) * DL(i, j, e);
            k++;
        }
        LC(i, i) = sqrt(rem);
        for (int64_t e = 0; e < nc; e++) DL(i, i, e) = drem[e] / (2.0 * LC(i, i));
    }
#undef LC
#undef DL
    return logj;
}

/* Cholesky factors (S, p, p) of the correlation matrices of the rows of W (S, nc). */
EXPORT int hl_corr_cholesky_many(const double *W, int64_t S, int64_t p, double *out) {
    int64_t nc = p * (p - 1) / 2, nce = max64(1, nc);
    double *dL = malloc(sizeof(double) * (p * p * nce + 2 * nce));
    if (!dL) return -1;
    for (int64_t s = 0; s < S; s++) corr_cholesky(W + s * nc, p, out + s * p * p, dL, dL + p * p * nce,
                                                   dL + p * p * nce + nce);
    free(dL);
    return 0;
}

/* Workspace of one density evaluation or one draw (one allocation, zeroed). */
typedef struct {
    double *block;
    double *Ts, *Lcs, *dLcs, *GTs, *Lc, *dLc, *dlogj, *drem; /* parameters */
    double *T1, *Minv, *M, *C, *AT, *e1, *y1;               /* first term */
    double *At, *B, *TM, *BA, *AL, *S, *L;                   /* the rest */
    double *Sc, *H, *h, *Hc, *Hinv, *bh, *ep, *xp;           /* fixed effects */
    double *G, *U, *Ktop, *KG, *W, *E, *F, *EW, *row;        /* gradient */
    double *u, *v, *w, *tw, *u1, *P;                         /* draws */
} Work;

static int alloc_work(const Model *m, Work *wk) {
    int64_t K = m->K, pm = m->pmax, nm = m->ncmax, p1 = m->p1, R = m->R, p = m->p, qr = m->qr, l1 = m->l1;
    int64_t sizes[] = {
        K * pm * pm, K * pm * pm, K * pm * pm * nm, K * pm * pm, pm * pm, pm * pm * nm, nm, nm,
        p1 * p1, l1 * p1 * p1, p1 * p1, p1 * p1, p1 * p1, p1, p1,
        R * R, p1 * p1, p1 * p1, p1 * R, R * R, R * R, R * R,
        (p + 1) * (p + 1), p * p, p, p * p, p * p, p, p, p,
        (p + 1) * (p + 1), qr * qr, qr * (p + 1), qr * (p + 1), R * R, p1 * R, p1 * R, p1 * R, R,
        qr, R, p1, p1, p1, p1 * p1,
    };
    double **ptrs[] = {
        &wk->Ts, &wk->Lcs, &wk->dLcs, &wk->GTs, &wk->Lc, &wk->dLc, &wk->dlogj, &wk->drem,
        &wk->T1, &wk->Minv, &wk->M, &wk->C, &wk->AT, &wk->e1, &wk->y1,
        &wk->At, &wk->B, &wk->TM, &wk->BA, &wk->AL, &wk->S, &wk->L,
        &wk->Sc, &wk->H, &wk->h, &wk->Hc, &wk->Hinv, &wk->bh, &wk->ep, &wk->xp,
        &wk->G, &wk->U, &wk->Ktop, &wk->KG, &wk->W, &wk->E, &wk->F, &wk->EW, &wk->row,
        &wk->u, &wk->v, &wk->w, &wk->tw, &wk->u1, &wk->P,
    };
    int nblocks = (int)(sizeof(sizes) / sizeof(sizes[0]));
    int64_t total = 0;
    for (int i = 0; i < nblocks; i++) total += max64(1, sizes[i]);
    wk->block = calloc((size_t)total, sizeof(double));
    if (!wk->block) return -1;
    double *at = wk->block;
    for (int i = 0; i < nblocks; i++) {
        *ptrs[i] = at;
        at += max64(1, sizes[i]);
    }
    return 0;
}

/* phi -> log prior + log Jacobian (returned), its gradient into g (zeroed
 * here), T_k = diag(sd_k) Lc_k / sigma into Ts (lme4's theta), the
 * correlation factors into Lcs and their derivatives into dLcs. */
static double parameters(const Model *m, const double *phi, double *g, Work *wk) {
    double *Ts = wk->Ts, *Lcs = wk->Lcs, *dLcs = wk->dLcs;
    memset(g, 0, sizeof(double) * m->size);
    memset(Ts, 0, sizeof(double) * m->K * m->pmax * m->pmax);
    memset(Lcs, 0, sizeof(double) * m->K * m->pmax * m->pmax);
    memset(dLcs, 0, sizeof(double) * m->K * m->pmax * m->pmax * m->ncmax);
    double sigma = exp(phi[0]), d;
    double lp = phi[0] + prior(m->priors, sigma, &d);
    g[0] = 1.0 + sigma * d;
    for (int64_t k = 0; k < m->K; k++) {
        int64_t pk = TP(k, 0), o_sd = TP(k, 3), nc = pk * (pk - 1) / 2, nce = max64(1, nc);
        double *Lc = wk->Lc, *dLc = wk->dLc, *dlogj = wk->dlogj;
#define LC(i, j) Lc[(i) * pk + (j)]
#define DL(i, j, e) dLc[((i) * pk + (j)) * nce + (e)]
        if (pk > 1) {
            lp += corr_cholesky(phi + o_sd + pk, pk, Lc, dLc, dlogj, wk->drem);
            for (int64_t i = 1; i < pk; i++) { /* LKJ(eta) on the Cholesky factor */
                double coef = (double)(pk - i - 1) + 2.0 * m->eta - 2.0;
                lp += coef * log(LC(i, i));
                for (int64_t e = 0; e < nc; e++) dlogj[e] += coef / LC(i, i) * DL(i, i, e);
            }
            for (int64_t e = 0; e < nc; e++) g[o_sd + pk + e] = dlogj[e];
        } else {
            LC(0, 0) = 1.0;
            dLc[0] = 0.0;
        }
        for (int64_t i = 0; i < pk; i++) {
            double sd = exp(phi[o_sd + i]);
            lp += phi[o_sd + i] + prior(m->priors + 6 * (1 + k), sd, &d);
            g[o_sd + i] = 1.0 + sd * d;
            for (int64_t j = 0; j <= i; j++) T3(Ts, k, i, j) = sd * LC(i, j) / sigma;
        }
        for (int64_t i = 0; i < pk; i++)
            for (int64_t j = 0; j < pk; j++) {
                T3(Lcs, k, i, j) = LC(i, j);
                for (int64_t e = 0; e < nce; e++) T4(dLcs, k, i, j, e) = DL(i, j, e);
            }
#undef LC
#undef DL
    }
    return lp;
}

/* C <- the lower Cholesky factor of the n x n SPD matrix M (upper part
 * zeroed); 0 if M is not SPD. */
static int small_cholesky(const double *M, double *C, int64_t n) {
    for (int64_t j = 0; j < n; j++) {
        double d = M[j * n + j];
        for (int64_t k = 0; k < j; k++) d -= C[j * n + k] * C[j * n + k];
        if (!(d > 0.0)) return 0;
        C[j * n + j] = sqrt(d);
        for (int64_t i = j + 1; i < n; i++) {
            double acc = M[i * n + j];
            for (int64_t k = 0; k < j; k++) acc -= C[i * n + k] * C[j * n + k];
            C[i * n + j] = acc / C[j * n + j];
        }
        for (int64_t i = 0; i < j; i++) C[i * n + j] = 0.0;
    }
    return 1;
}

/* x <- the solution of C C' x = b (C lower triangular, n x n). */
static void cho_solve(const double *C, const double *b, double *x, int64_t n) {
    for (int64_t a = 0; a < n; a++) {
        double acc = b[a];
        for (int64_t c = 0; c < a; c++) acc -= C[a * n + c] * x[c];
        x[a] = acc / C[a * n + a];
    }
    for (int64_t a = n - 1; a >= 0; a--) {
        double acc = x[a];
        for (int64_t c = a + 1; c < n; c++) acc -= C[c * n + a] * x[c];
        x[a] = acc / C[a * n + a];
    }
}

/* out <- (C C')^-1, column by column; e (zeros) and x are work vectors of n. */
static void cho_inverse(const double *C, double *out, double *e, double *x, int64_t n) {
    for (int64_t b = 0; b < n; b++) {
        e[b] = 1.0;
        cho_solve(C, e, x, n);
        e[b] = 0.0;
        for (int64_t a = 0; a < n; a++) out[a * n + b] = x[a];
    }
}

/* C (n x m) <- A (n x k) B (k x m). */
static void matmul(const double *A, const double *B, double *C, int64_t n, int64_t k, int64_t m) {
    for (int64_t a = 0; a < n; a++)
        for (int64_t c = 0; c < m; c++) {
            double acc = 0.0;
            for (int64_t b = 0; b < k; b++) acc += A[a * k + b] * B[b * m + c];
            C[a * m + c] = acc;
        }
}

/* AT <- A T for p x p matrices, T lower triangular (a term's T_k). */
static void times_lower(const double *A, const double *T, double *AT, int64_t p) {
    for (int64_t a = 0; a < p; a++)
        for (int64_t b = 0; b < p; b++) {
            double acc = 0.0;
            for (int64_t c = b; c < p; c++) acc += A[a * p + c] * T[c * p + b];
            AT[a * p + b] = acc;
        }
}

/* Per level i of the first term, M_i = T1' A11_i T1 + I, its inverse into
 * Minv; returns sum log|M_i| (ok = 0 where an M_i is not SPD). */
static double first_term(const Model *m, Work *wk, int *ok) {
    int64_t p1 = m->p1;
    const double *T1 = wk->T1;
    double *M = wk->M, *C = wk->C, *AT = wk->AT, logdet = 0.0;
    for (int64_t lv = 0; lv < m->l1; lv++) {
        times_lower(m->A11 + lv * p1 * p1, T1, AT, p1);
        for (int64_t a = 0; a < p1; a++)
            for (int64_t b = 0; b < p1; b++) {
                double acc = a == b ? 1.0 : 0.0;
                for (int64_t c = a; c < p1; c++) acc += T1[c * p1 + a] * AT[c * p1 + b];
                M[a * p1 + b] = acc;
            }
        if (!small_cholesky(M, C, p1)) {
            *ok = 0;
            return 0.0;
        }
        for (int64_t a = 0; a < p1; a++) logdet += 2.0 * log(C[a * p1 + a]);
        cho_inverse(C, wk->Minv + lv * p1 * p1, wk->e1, wk->y1, p1);
    }
    *ok = 1;
    return logdet;
}

/* out <- row Lambda_r for one row of the rest's columns (out holds row's
 * values already; the other terms' blocks are overwritten). */
static void row_lambda(const Model *m, const double *row, double *out, const double *Ts) {
    for (int64_t k = 1; k < m->K; k++) {
        int64_t pk = TP(k, 0), nlev = TP(k, 1), off = TP(k, 2);
        for (int64_t lv = 0; lv < nlev; lv++) {
            int64_t base = off + lv * pk;
            for (int64_t j = 0; j < pk; j++) {
                double acc = 0.0;
                for (int64_t i = j; i < pk; i++) acc += row[base + i] * T3(Ts, k, i, j);
                out[base + j] = acc;
            }
        }
    }
}

/* At <- A_rr - sum_i A1r_i' B_i A1r_i, B_i = T1 M_i^-1 T1': the rest's block
 * once the first term is eliminated level by level (unscaled by Lambda_r). */
static void schur_rest(const Model *m, Work *wk) {
    int64_t p1 = m->p1, R = m->R;
    double *At = wk->At, *B = wk->B, *TM = wk->TM, *BA = wk->BA;
    const double *T1 = wk->T1;
    memcpy(At, m->Arr, sizeof(double) * R * R);
    for (int64_t lv = 0; lv < m->l1; lv++) {
        const double *Mi = wk->Minv + lv * p1 * p1, *A = m->A1r + lv * p1 * R;
        for (int64_t a = 0; a < p1; a++) /* T1 M^-1 */
            for (int64_t b = 0; b < p1; b++) {
                double acc = 0.0;
                for (int64_t c = 0; c <= a; c++) acc += T1[a * p1 + c] * Mi[c * p1 + b];
                TM[a * p1 + b] = acc;
            }
        for (int64_t a = 0; a < p1; a++) /* (T1 M^-1) T1' */
            for (int64_t b = 0; b < p1; b++) {
                double acc = 0.0;
                for (int64_t c = 0; c <= b; c++) acc += TM[a * p1 + c] * T1[b * p1 + c];
                B[a * p1 + b] = acc;
            }
        matmul(B, A, BA, p1, p1, R);
        for (int64_t r = 0; r < R; r++)
            for (int64_t a = 0; a < p1; a++) {
                double v = A[a * R + r];
                if (v != 0.0)
                    for (int64_t c = 0; c < R; c++) At[r * R + c] -= v * BA[a * R + c];
            }
    }
}

/* AL <- At Lambda_r, S <- Lambda_r' At Lambda_r + diag(I_qr, 0): Lambda_r is
 * block diagonal (T_k per level of each term after the first), the identity
 * on X and y.  Row by row, so that the inner loops run along rows. */
static void lambda_rest(const Model *m, Work *wk) {
    int64_t R = m->R;
    double *AL = wk->AL, *S = wk->S;
    const double *At = wk->At, *Ts = wk->Ts;
    memcpy(AL, At, sizeof(double) * R * R);
    for (int64_t r = 0; r < R; r++) row_lambda(m, At + r * R, AL + r * R, Ts);
    memcpy(S, AL, sizeof(double) * R * R);
    for (int64_t k = 1; k < m->K; k++) {
        int64_t pk = TP(k, 0), nlev = TP(k, 1), off = TP(k, 2);
        for (int64_t lv = 0; lv < nlev; lv++) {
            int64_t base = off + lv * pk;
            for (int64_t j = 0; j < pk; j++) {
                double *Sj = S + (base + j) * R;
                for (int64_t c = 0; c < R; c++) Sj[c] = 0.0;
                for (int64_t i = j; i < pk; i++) {
                    double t = T3(Ts, k, i, j);
                    const double *ALi = AL + (base + i) * R;
                    for (int64_t c = 0; c < R; c++) Sj[c] += t * ALi[c];
                }
            }
        }
    }
    for (int64_t i = 0; i < m->qr; i++) S[i * R + i] += 1.0;
}

/* The blocked factor at (T_k, sigma^2), Ts already in the workspace: the
 * first term level by level (Minv), the rest's Schur complement factored
 * densely (L), and the fixed effects' posterior precision H (with h, Hc its
 * Cholesky factor) from Sc = [X y]' V^-1 [X y].  Returns sum log|M_i|; ok = 0
 * where a factorization fails. */
static double factor(const Model *m, Work *wk, double s2, int *ok) {
    int64_t R = m->R, p = m->p, qr = m->qr, p1 = m->p1;
    for (int64_t a = 0; a < p1; a++)
        for (int64_t b = 0; b < p1; b++) wk->T1[a * p1 + b] = T3(wk->Ts, 0, a, b);
    double logdet_1 = first_term(m, wk, ok);
    if (!*ok) return 0.0;
    schur_rest(m, wk);
    lambda_rest(m, wk);
    double *L = wk->L, *Sc = wk->Sc, *H = wk->H;
    if (!small_cholesky(wk->S, L, R)) {
        *ok = 0;
        return 0.0;
    }
    for (int64_t a = 0; a <= p; a++) /* [X y]' V^-1 [X y] = Lb Lb', Lb = L[qr:, qr:] */
        for (int64_t b = 0; b <= a; b++) {
            double acc = 0.0;
            for (int64_t c = 0; c <= b; c++) acc += L[(qr + a) * R + qr + c] * L[(qr + b) * R + qr + c];
            Sc[a * (p + 1) + b] = acc;
            Sc[b * (p + 1) + a] = acc;
        }
    for (int64_t i = 0; i < p; i++) {
        for (int64_t j = 0; j < p; j++) H[i * p + j] = Sc[i * (p + 1) + j] / s2;
        H[i * p + i] += m->P0[i];
        wk->h[i] = m->P0[i] * m->mu0[i] + Sc[i * (p + 1) + p] / s2;
    }
    *ok = small_cholesky(H, wk->Hc, p);
    return logdet_1;
}

/* Log marginal posterior at phi (returned) and, when grad, its gradient into
 * g; ok = 0 where the density does not exist (an extreme point).
 *
 * With D = sum_i log|M_i| + D_r(S^) (S^ the rest's Schur complement, scaled by
 * Lambda_r) the rest's terms take the dense gradient on S^ (W_r = dD_r/dS^),
 * and the first term's T1 takes 2 sum_i [A11_i T1 M_i^-1 + (A11_i T1 F_i -
 * E_i) W_r F_i'] with E_i = A1r_i Lambda_r, F_i = M_i^-1 T1' E_i (the blocks
 * of dD/dS of the whole system, written by the blocked inverse). */
static double marginal_logp(const Model *m, Work *wk, const double *phi, int grad, double *g, int *ok) {
    int64_t R = m->R, p = m->p, qr = m->qr, p1 = m->p1, K = m->K, P = p + 1;
    double lp = parameters(m, phi, g, wk);
    double sigma = exp(phi[0]), s2 = sigma * sigma;
    *ok = 0;
    if (!isfinite(lp)) return -INFINITY;
    double logdet_z = factor(m, wk, s2, ok);
    if (!*ok) return -INFINITY;
    const double *L = wk->L, *Sc = wk->Sc, *Hc = wk->Hc, *h = wk->h, *AL = wk->AL, *Ts = wk->Ts;
    double *Hinv = wk->Hinv, *bh = wk->bh;
    for (int64_t i = 0; i < qr; i++) logdet_z += 2.0 * log(L[i * R + i]);
    cho_inverse(Hc, Hinv, wk->ep, wk->xp, p);
    cho_solve(Hc, h, bh, p);
    double D = m->n * log(s2) + logdet_z + Sc[p * P + p] / s2 + m->cnst;
    for (int64_t j = 0; j < p; j++) D += 2.0 * log(Hc[j * p + j]) + m->mu0[j] * m->P0[j] * m->mu0[j] - h[j] * bh[j];
    double val = lp - 0.5 * D;
    if (!grad) return val;
    /* G = dD / d([X y]' V^-1 [X y]);  W_r = dD_r/dS^ = blockdiag(S^_ZZ^-1, 0) + K G K' */
    double *G = wk->G, *U = wk->U, *Ktop = wk->Ktop, *KG = wk->KG, *W = wk->W;
    for (int64_t a = 0; a < P; a++) {
        double va = a < p ? bh[a] : -1.0;
        for (int64_t b = 0; b < P; b++) {
            double vb = b < p ? bh[b] : -1.0;
            G[a * P + b] = (va * vb + (a < p && b < p ? Hinv[a * p + b] : 0.0)) / s2;
        }
    }
    /* U = L_Z^-T (upper), by forward substitution: U[j, i] = (L_Z^-1)[i, j] */
    for (int64_t i = 0; i < qr; i++) {
        U[i * qr + i] = 1.0 / L[i * R + i];
        for (int64_t j = 0; j < i; j++) {
            double acc = 0.0;
            for (int64_t k = j; k < i; k++) acc += L[i * R + k] * U[j * qr + k];
            U[j * qr + i] = -acc / L[i * R + i];
        }
    }
    for (int64_t c = 0; c < qr; c++) /* -S^_ZZ^-1 S^_Z,xy = -L_Z^-T L_xy,Z' */
        for (int64_t e = 0; e < P; e++) {
            double acc = 0.0;
            for (int64_t k = c; k < qr; k++) acc += U[c * qr + k] * L[(qr + e) * R + k];
            Ktop[c * P + e] = -acc;
        }
    matmul(Ktop, G, KG, qr, P, P);
    for (int64_t c = 0; c < qr; c++)
        for (int64_t b = 0; b <= c; b++) {
            double acc = 0.0;
            for (int64_t k = c; k < qr; k++) acc += U[c * qr + k] * U[b * qr + k];
            for (int64_t f = 0; f < P; f++) acc += KG[c * P + f] * Ktop[b * P + f];
            W[c * R + b] = acc;
            W[b * R + c] = acc;
        }
    for (int64_t e = 0; e < P; e++) {
        for (int64_t b = 0; b < qr; b++) {
            W[(qr + e) * R + b] = KG[b * P + e];
            W[b * R + qr + e] = KG[b * P + e];
        }
        for (int64_t f = 0; f < P; f++) W[(qr + e) * R + qr + f] = G[e * P + f];
    }
    double rss = Sc[p * P + p], tr = 0.0;
    for (int64_t i = 0; i < p; i++) {
        rss -= 2.0 * bh[i] * Sc[i * P + p];
        for (int64_t j = 0; j < p; j++) {
            rss += bh[i] * Sc[i * P + j] * bh[j];
            tr += Hinv[i * p + j] * Sc[j * P + i];
        }
    }
    double dsig = 2.0 * sigma * (m->n / s2 - tr / (s2 * s2) - rss / (s2 * s2)); /* dD/dsigma, T held fixed */
    double *GTs = wk->GTs;
    memset(GTs, 0, sizeof(double) * K * m->pmax * m->pmax);
    /* the rest's terms: dD/dT_k[i, j] = 2 sum over levels of (A~ Lambda_r W_r)[base + i, base + j] */
    for (int64_t k = 1; k < K; k++) {
        int64_t pk = TP(k, 0), nlev = TP(k, 1), off = TP(k, 2);
        for (int64_t lv = 0; lv < nlev; lv++) {
            int64_t base = off + lv * pk;
            for (int64_t i = 0; i < pk; i++)
                for (int64_t j = 0; j <= i; j++) {
                    double acc = 0.0;
                    for (int64_t c = 0; c < R; c++) acc += AL[(base + i) * R + c] * W[c * R + base + j];
                    T3(GTs, k, i, j) += 2.0 * acc;
                }
        }
    }
    /* the first term, level by level */
    double *E = wk->E, *F = wk->F, *AT = wk->AT, *EW = wk->EW, *row = wk->row;
    const double *T1 = wk->T1;
    for (int64_t lv = 0; lv < m->l1; lv++) {
        const double *A1 = m->A1r + lv * p1 * R, *A11 = m->A11 + lv * p1 * p1, *Mi = wk->Minv + lv * p1 * p1;
        for (int64_t a = 0; a < p1; a++) { /* E = A1r_i Lambda_r */
            memcpy(E + a * R, A1 + a * R, sizeof(double) * R);
            row_lambda(m, A1 + a * R, E + a * R, Ts);
        }
        times_lower(A11, T1, AT, p1); /* AT = A11_i T1 */
        for (int64_t a = 0; a < p1; a++) /* F = M_i^-1 T1' E */
            for (int64_t c = 0; c < R; c++) {
                double acc = 0.0;
                for (int64_t b = 0; b < p1; b++) {
                    double tb = 0.0;
                    for (int64_t d = b; d < p1; d++) tb += T1[d * p1 + b] * E[d * R + c];
                    acc += Mi[a * p1 + b] * tb;
                }
                F[a * R + c] = acc;
            }
        for (int64_t a = 0; a < p1; a++) { /* EW = (A11_i T1 F - E) W_r */
            for (int64_t c = 0; c < R; c++) {
                double acc = -E[a * R + c];
                for (int64_t b = 0; b < p1; b++) acc += AT[a * p1 + b] * F[b * R + c];
                row[c] = acc;
            }
            for (int64_t c = 0; c < R; c++) {
                double acc = 0.0;
                for (int64_t d = 0; d < R; d++) acc += row[d] * W[d * R + c];
                EW[a * R + c] = acc;
            }
        }
        for (int64_t a = 0; a < p1; a++)
            for (int64_t b = 0; b <= a; b++) {
                double acc = 0.0;
                for (int64_t c = 0; c < p1; c++) acc += AT[a * p1 + c] * Mi[c * p1 + b];
                for (int64_t c = 0; c < R; c++) acc += EW[a * R + c] * F[b * R + c];
                T3(GTs, 0, a, b) += 2.0 * acc;
            }
    }
    /* chain rule: T_k = diag(sd) Lc / sigma */
    for (int64_t k = 0; k < K; k++) {
        int64_t pk = TP(k, 0), o_sd = TP(k, 3), nc = pk * (pk - 1) / 2;
        for (int64_t i = 0; i < pk; i++) {
            double sd = exp(phi[o_sd + i]), acc = 0.0;
            for (int64_t j = 0; j <= i; j++) {
                acc += T3(GTs, k, i, j) * T3(wk->Lcs, k, i, j);
                dsig -= T3(GTs, k, i, j) * T3(Ts, k, i, j) / sigma;
            }
            g[o_sd + i] += -0.5 * acc * sd / sigma;
            if (pk > 1)
                for (int64_t j = 0; j <= i; j++)
                    for (int64_t e = 0; e < nc; e++)
                        g[o_sd + pk + e] += -0.5 * sd * T3(GTs, k, i, j) / sigma * T4(wk->dLcs, k, i, j, e);
        }
    }
    g[0] += -0.5 * sigma * dsig;
    return val;
}

/* Log marginal posterior at phi into *logp and, when grad, its gradient into g
 * (size values).  Returns 0; 1 where the density does not exist there
 * (*logp = -inf); -1 when out of memory. */
EXPORT int hl_logp(const double *buf, const double *phi, int grad, double *logp, double *g) {
    Model m;
    Work wk;
    read_model(buf, &m);
    if (alloc_work(&m, &wk)) return -1;
    int ok;
    *logp = marginal_logp(&m, &wk, phi, grad, g, &ok);
    free(wk.block);
    return ok ? 0 : 1;
}

/* Exact draws of beta and b for each of the S rows of phis, from standard
 * normals Zb (S, p), Zr (S, q_rest), Z1 (S, levels, p1): beta ~ N(beta^, H^-1),
 * then the rest's u_r | beta (the first term integrated out: the reduced
 * factor), then level by level
 * u_1i | u_r, beta ~ N(M_i^-1 T1' A1r_i [-Lambda_r u_r; -beta; 1], sigma^2 M_i^-1).
 * Writes beta (S, p), b of the rest (S, q_rest), b of the first term
 * (S, levels, p1) and good (S: 1 where the factor exists).  Returns 0, or -1
 * when out of memory. */
EXPORT int hl_draw(const double *buf, int64_t S_all, const double *phis, const double *Zb, const double *Zr,
                   const double *Z1, double *beta, double *b_rest, double *b_first, uint8_t *good) {
    Model mm;
    Work wk;
    const Model *m = &mm;
    read_model(buf, &mm);
    if (alloc_work(&mm, &wk)) return -1;
    int64_t l1 = m->l1, p1 = m->p1, R = m->R, p = m->p, qr = m->qr, K = m->K;
    double *g = calloc((size_t)max64(1, m->size), sizeof(double));
    if (!g) {
        free(wk.block);
        return -1;
    }
    memset(beta, 0, sizeof(double) * S_all * p);
    memset(b_rest, 0, sizeof(double) * S_all * qr);
    memset(b_first, 0, sizeof(double) * S_all * l1 * p1);
    for (int64_t s = 0; s < S_all; s++) {
        good[s] = 0;
        const double *phi = phis + s * m->size;
        parameters(m, phi, g, &wk);
        double sigma = exp(phi[0]), s2 = sigma * sigma;
        int ok;
        factor(m, &wk, s2, &ok);
        if (!ok) continue; /* the draw stays marked bad */
        const double *L = wk.L, *Hc = wk.Hc, *Ts = wk.Ts, *T1 = wk.T1;
        double *bh = wk.bh, *bs = beta + s * p, *br = b_rest + s * qr, *u = wk.u, *v = wk.v;
        cho_solve(Hc, wk.h, bh, p);
        for (int64_t a = p - 1; a >= 0; a--) { /* beta = beta^ + Hc^-T z */
            double acc = Zb[s * p + a];
            for (int64_t c = a + 1; c < p; c++) acc -= Hc[c * p + a] * bs[c];
            bs[a] = acc / Hc[a * p + a];
        }
        for (int64_t a = 0; a < p; a++) bs[a] += bh[a];
        for (int64_t c = qr - 1; c >= 0; c--) { /* u_r = L_Z^-T (l_y - L_xZ' beta + sigma z) */
            double acc = L[(R - 1) * R + c] + sigma * Zr[s * qr + c];
            for (int64_t j = 0; j < p; j++) acc -= bs[j] * L[(qr + j) * R + c];
            for (int64_t k = c + 1; k < qr; k++) acc -= L[k * R + c] * u[k];
            u[c] = acc / L[c * R + c];
        }
        /* b_r = Lambda_r u_r, and the combination [-b_r; -beta; 1] of the rest's columns */
        for (int64_t k = 1; k < K; k++) {
            int64_t pk = TP(k, 0), nlev = TP(k, 1), off = TP(k, 2);
            for (int64_t lv = 0; lv < nlev; lv++) {
                int64_t base = off + lv * pk;
                for (int64_t i = 0; i < pk; i++) {
                    double acc = 0.0;
                    for (int64_t j = 0; j <= i; j++) acc += T3(Ts, k, i, j) * u[base + j];
                    br[base + i] = acc;
                }
            }
        }
        for (int64_t c = 0; c < qr; c++) v[c] = -br[c];
        for (int64_t j = 0; j < p; j++) v[qr + j] = -bs[j];
        v[R - 1] = 1.0;
        int fine = 1;
        double *w = wk.w, *tw = wk.tw, *u1 = wk.u1, *Pc = wk.P;
        for (int64_t lv = 0; lv < l1; lv++) {
            const double *A1 = m->A1r + lv * p1 * R, *Mi = wk.Minv + lv * p1 * p1, *z = Z1 + (s * l1 + lv) * p1;
            for (int64_t a = 0; a < p1; a++) {
                double acc = 0.0;
                for (int64_t c = 0; c < R; c++) acc += A1[a * R + c] * v[c];
                w[a] = acc;
            }
            for (int64_t a = 0; a < p1; a++) { /* T1' w */
                double acc = 0.0;
                for (int64_t c = a; c < p1; c++) acc += T1[c * p1 + a] * w[c];
                tw[a] = acc;
            }
            if (!small_cholesky(Mi, Pc, p1)) {
                fine = 0;
                break;
            }
            for (int64_t a = 0; a < p1; a++) {
                double acc = 0.0;
                for (int64_t c = 0; c < p1; c++) acc += Mi[a * p1 + c] * tw[c];
                for (int64_t c = 0; c <= a; c++) acc += sigma * Pc[a * p1 + c] * z[c];
                u1[a] = acc;
            }
            for (int64_t a = 0; a < p1; a++) {
                double acc = 0.0;
                for (int64_t c = 0; c <= a; c++) acc += T1[a * p1 + c] * u1[c];
                b_first[(s * l1 + lv) * p1 + a] = acc;
            }
        }
        good[s] = (uint8_t)fine;
    }
    free(g);
    free(wk.block);
    return 0;
}

/* ---- the density as nutpie's C callbacks ------------------------------------
 * nutpie's sampler (Rust) calls these through their addresses for each
 * gradient, with the model buffer as user data: no Python, no GIL, chains in
 * parallel.  Return codes are nutpie's: 0 ok, 3 a non-finite gradient, 4 a
 * non-finite density (a divergence rather than an error), -1 a wrong size or
 * no memory. */
EXPORT int64_t hl_logp_callback(uint64_t dim, const double *x, double *out, double *logp, const double *buf) {
    if ((int64_t)dim != (int64_t)buf[9]) return -1;
    double val;
    int rc = hl_logp(buf, x, dim > 0, &val, out);
    if (rc < 0) return -1;
    if (rc > 0 || !isfinite(val)) return 4;
    for (uint64_t i = 0; i < dim; i++)
        if (!isfinite(out[i])) return 3;
    *logp = val;
    return 0;
}

EXPORT int64_t hl_expand_callback(uint64_t dim, uint64_t n_expanded, const double *x, double *out,
                                  const double *buf) {
    (void)buf;
    if (dim != n_expanded) return -1;
    memcpy(out, x, sizeof(double) * dim);
    return 0;
}

/* The Python module itself holds nothing: hierlm.bayes.kernels reaches the
 * functions above through ctypes (their addresses are what nutpie needs). */
static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_kernels",
    "The engine posterior's compiled kernels (C); used through hierlm.bayes.kernels.", -1, NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&moduledef); }
