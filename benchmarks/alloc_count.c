/* Counts the allocations of at least a given size made through Python's allocators, for
   bench_copies.py. Built by that script with the system C compiler. Only the raw domain is
   hooked: the object and memory domains (pymalloc) hand every request over 512 bytes to it. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

static PyMemAllocatorEx orig[1];
static const PyMemAllocatorDomain domains[1] = {PYMEM_DOMAIN_RAW};
static size_t threshold = SIZE_MAX;
static unsigned long long count, total;
static int installed;
static size_t recent[64];
static unsigned int recent_at;

static inline void note(size_t n) {
    if (n >= threshold) {
        __atomic_fetch_add(&count, 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&total, (unsigned long long)n, __ATOMIC_RELAXED);
        recent[__atomic_fetch_add(&recent_at, 1, __ATOMIC_RELAXED) % 64] = n;
    }
}

static void *hk_malloc(void *ctx, size_t n) {
    PyMemAllocatorEx *o = ctx;
    note(n);
    return o->malloc(o->ctx, n);
}

static void *hk_calloc(void *ctx, size_t nelem, size_t elsize) {
    PyMemAllocatorEx *o = ctx;
    note(nelem * elsize);
    return o->calloc(o->ctx, nelem, elsize);
}

static void *hk_realloc(void *ctx, void *p, size_t n) {
    PyMemAllocatorEx *o = ctx;
    note(n);
    return o->realloc(o->ctx, p, n);
}

static void hk_free(void *ctx, void *p) {
    PyMemAllocatorEx *o = ctx;
    o->free(o->ctx, p);
}

static PyObject *start(PyObject *self, PyObject *args) {
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "n", &n)) return NULL;
    threshold = (size_t)n;
    count = total = 0;
    if (!installed) {
        for (int i = 0; i < 1; i++) {
            PyMem_GetAllocator(domains[i], &orig[i]);
            PyMemAllocatorEx hook = {&orig[i], hk_malloc, hk_calloc, hk_realloc, hk_free};
            PyMem_SetAllocator(domains[i], &hook);
        }
        installed = 1;
    }
    Py_RETURN_NONE;
}

static PyObject *read_counts(PyObject *self, PyObject *args) {
    return Py_BuildValue("(KK)", count, total);
}

static PyObject *read_recent(PyObject *self, PyObject *args) {
    PyObject *out = PyList_New(0);
    for (unsigned int i = 0; i < 64; i++) {
        PyObject *n = PyLong_FromSize_t(recent[(recent_at + i) % 64]);
        PyList_Append(out, n);
        Py_DECREF(n);
    }
    return out;
}

static PyMethodDef methods[] = {
    {"recent", read_recent, METH_NOARGS, "the sizes of the last 64 allocations counted"},
    {"start", start, METH_VARARGS, "count allocations of at least n bytes from now on"},
    {"counts", read_counts, METH_NOARGS, "(allocations, bytes) counted since start"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "alloc_count", NULL, -1, methods};

PyMODINIT_FUNC PyInit_alloc_count(void) { return PyModule_Create(&module); }
