/* One-pass SGD and Adam steps over a population's flat buffers (zoo.optim.BatchedOptimizer).
 *
 * The torch path of BatchedOptimizer.step makes three to six passes over every buffer, and its
 * per-model coefficients (one per row of the [P, row] buffer) are broadcast operands that push
 * torch's elementwise kernels onto their scalar loops. These kernels make one pass and give the
 * same bits: every operation is the one torch's kernels perform, in the same order, each
 * correctly rounded (IEEE add, multiply, divide, sqrt, and fmaf where torch's kernels fuse a
 * multiply-add), so the result depends neither on the instruction set chosen below nor on a
 * model's position in its population. Build with -ffp-contract=off: the compiler must not fuse
 * what torch does not. tests/test_fast_paths.py checks the bits against the torch path.
 *
 * Arguments are the addresses of contiguous float32 buffers ([P, row] model-major, see
 * zoo.optim.FlatLayout) and of [P] float32 per-model coefficients (0 for weight decay: none).
 * Both kernels also write finite[i] = 1 if every entry of model i's proposal is finite, else 0
 * (an integer test of the exponent bits, which vectorises; no second pass over the proposal).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* 1 if x is ±inf or NaN: all exponent bits set. */
static inline __attribute__((always_inline)) uint32_t non_finite(float x) {
  uint32_t bits;
  memcpy(&bits, &x, sizeof bits);
  return (bits & 0x7f800000u) == 0x7f800000u;
}

/* m ← β₁-lerp toward g, v ← β₂·v + (1−β₂)·g², out ← p − m / (√v · inv + eps_c); with weight
 * decay g ← g + wd·p first. first: m = (1−β₁)·g and v = (1−β₂)·g² (torch's first step). */
static inline __attribute__((always_inline)) void adam_body(
    Py_ssize_t P, Py_ssize_t row, const float *restrict p, const float *restrict g, float *restrict m,
    float *restrict v, float *restrict out, uint8_t *finite, const float *wd, const float *inv,
    const float *eps_c, int first, float one_minus_b1, float b2, float one_minus_b2) {
  for (Py_ssize_t i = 0; i < P; i++) {
    const float w = wd ? wd[i] : 0.0f, ic = inv[i], ec = eps_c[i];
    const Py_ssize_t o = i * row;
    const float *pp = p + o, *gp = g + o;
    float *mp = m + o, *vp = v + o, *op = out + o;
    uint32_t bad = 0;
    if (first) {
      for (Py_ssize_t j = 0; j < row; j++) {
        const float gj = wd ? fmaf(pp[j], w, gp[j]) : gp[j];   /* addcmul_(p, wd) */
        const float mj = gj * one_minus_b1;                      /* grad * (1 − β₁) */
        const float vj = (gj * gj) * one_minus_b2;               /* (grad * grad) * (1 − β₂) */
        mp[j] = mj;
        vp[j] = vj;
        op[j] = pp[j] + (-mj) / fmaf(sqrtf(vj), ic, ec);         /* addcmul, then addcdiv */
        bad |= non_finite(op[j]);
      }
    } else {
      for (Py_ssize_t j = 0; j < row; j++) {
        const float gj = wd ? fmaf(pp[j], w, gp[j]) : gp[j];
        const float mj = fmaf(one_minus_b1, gj - mp[j], mp[j]);     /* lerp_(g, 1 − β₁), weight < ½ */
        const float vj = fmaf(one_minus_b2 * gj, gj, vp[j] * b2);   /* mul_(β₂).addcmul_(g, g, 1 − β₂) */
        mp[j] = mj;
        vp[j] = vj;
        op[j] = pp[j] + (-mj) / fmaf(sqrtf(vj), ic, ec);
        bad |= non_finite(op[j]);
      }
    }
    finite[i] = !bad;
  }
}

/* buf ← g (first step) or momentum·buf + g, out ← p − lr·buf; with weight decay g ← g + wd·p first. */
static inline __attribute__((always_inline)) void sgd_body(
    Py_ssize_t P, Py_ssize_t row, const float *restrict p, const float *restrict g, float *restrict buf,
    float *restrict out, uint8_t *finite, const float *wd, const float *momentum, const float *lr, int first) {
  for (Py_ssize_t i = 0; i < P; i++) {
    const float w = wd ? wd[i] : 0.0f, mu = momentum[i], lr_i = lr[i];
    const Py_ssize_t o = i * row;
    const float *pp = p + o, *gp = g + o;
    float *bp = buf + o, *op = out + o;
    uint32_t bad = 0;
    for (Py_ssize_t j = 0; j < row; j++) {
      const float gj = wd ? fmaf(pp[j], w, gp[j]) : gp[j];
      const float bj = first ? gj : fmaf(bp[j], mu, gj);  /* addcmul(g, buf, momentum) */
      bp[j] = bj;
      op[j] = fmaf(-bj, lr_i, pp[j]);                     /* addcmul(p, buf, lr, value=−1) */
      bad |= non_finite(op[j]);
    }
    finite[i] = !bad;
  }
}

#define KERNELS(SUFFIX, TARGET)                                                                       \
  TARGET static void adam_##SUFFIX(Py_ssize_t P, Py_ssize_t row, const float *p, const float *g,     \
                                   float *m, float *v, float *out, uint8_t *fin, const float *wd,     \
                                   const float *inv, const float *ec, int first, float a, float b,    \
                                   float c) {                                                         \
    adam_body(P, row, p, g, m, v, out, fin, wd, inv, ec, first, a, b, c);                             \
  }                                                                                                   \
  TARGET static void sgd_##SUFFIX(Py_ssize_t P, Py_ssize_t row, const float *p, const float *g,      \
                                  float *buf, float *out, uint8_t *fin, const float *wd,              \
                                  const float *mu, const float *lr, int first) {                      \
    sgd_body(P, row, p, g, buf, out, fin, wd, mu, lr, first);                                         \
  }

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
KERNELS(avx2, __attribute__((target("avx2,fma"))))
#define HAVE_AVX2_KERNELS 1
#endif
KERNELS(generic, )

typedef void (*adam_fn)(Py_ssize_t, Py_ssize_t, const float *, const float *, float *, float *, float *,
                        uint8_t *, const float *, const float *, const float *, int, float, float, float);
typedef void (*sgd_fn)(Py_ssize_t, Py_ssize_t, const float *, const float *, float *, float *, uint8_t *,
                       const float *, const float *, const float *, int);
static adam_fn adam_kernel = adam_generic;
static sgd_fn sgd_kernel = sgd_generic;
static const char *isa = "generic";

#define PTR(x) ((float *)(uintptr_t)(x))

static PyObject *py_adam(PyObject *self, PyObject *args) {
  Py_ssize_t P, row;
  unsigned long long p, g, m, v, out, fin, wd, inv, ec;
  int first;
  float a, b, c;
  if (!PyArg_ParseTuple(args, "nnKKKKKKKKKpfff", &P, &row, &p, &g, &m, &v, &out, &fin, &wd, &inv, &ec, &first,
                        &a, &b, &c))
    return NULL;
  Py_BEGIN_ALLOW_THREADS
  adam_kernel(P, row, PTR(p), PTR(g), PTR(m), PTR(v), PTR(out), (uint8_t *)(uintptr_t)fin, wd ? PTR(wd) : NULL,
              PTR(inv), PTR(ec), first, a, b, c);
  Py_END_ALLOW_THREADS
  Py_RETURN_NONE;
}

static PyObject *py_sgd(PyObject *self, PyObject *args) {
  Py_ssize_t P, row;
  unsigned long long p, g, buf, out, fin, wd, mu, lr;
  int first;
  if (!PyArg_ParseTuple(args, "nnKKKKKKKKp", &P, &row, &p, &g, &buf, &out, &fin, &wd, &mu, &lr, &first))
    return NULL;
  Py_BEGIN_ALLOW_THREADS
  sgd_kernel(P, row, PTR(p), PTR(g), PTR(buf), PTR(out), (uint8_t *)(uintptr_t)fin, wd ? PTR(wd) : NULL,
             PTR(mu), PTR(lr), first);
  Py_END_ALLOW_THREADS
  Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"adam", py_adam, METH_VARARGS,
     "adam(P, row, p, g, m, v, out, finite, wd, inv, eps_c, first, 1-b1, b2, 1-b2): one Adam pass (addresses)."},
    {"sgd", py_sgd, METH_VARARGS, "sgd(P, row, p, g, buf, out, finite, wd, momentum, lr, first): one SGD pass (addresses)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "zoo._fused",
                                    "One-pass SGD/Adam kernels, bit-identical to zoo.optim's torch passes.", -1,
                                    methods};

PyMODINIT_FUNC PyInit__fused(void) {
#ifdef HAVE_AVX2_KERNELS
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    adam_kernel = adam_avx2;
    sgd_kernel = sgd_avx2;
    isa = "avx2+fma";
  }
#endif
  PyObject *mod = PyModule_Create(&module);
  if (mod != NULL && PyModule_AddStringConstant(mod, "isa", isa) < 0) {
    Py_DECREF(mod);
    return NULL;
  }
  return mod;
}
