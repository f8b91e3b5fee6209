/* Minimal checks for image/ unit tests: count failures, keep going. */
#ifndef CORRAL_TEST_IMAGE_CHECK_H
#define CORRAL_TEST_IMAGE_CHECK_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(cond)                                                                                          \
        do {                                                                                                 \
                if (!(cond)) {                                                                               \
                        fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);             \
                        failures++;                                                                          \
                }                                                                                            \
        } while (0)

#define CHECK_STR(a, b)                                                                                      \
        do {                                                                                                 \
                const char *_a = (a), *_b = (b);                                                             \
                if (!_a || !_b || strcmp(_a, _b) != 0) {                                                     \
                        fprintf(stderr, "%s:%d: \"%s\" != \"%s\" (%s)\n", __FILE__, __LINE__,                \
                                _a ? _a : "(null)", _b ? _b : "(null)", #a);                                 \
                        failures++;                                                                          \
                }                                                                                            \
        } while (0)

/* `expr` must fail with `kind`; its message must contain `needle` (or NULL). */
#define CHECK_ERR(expr, e, k, needle)                                                                        \
        do {                                                                                                 \
                err_clear(e);                                                                                \
                int _r = (expr);                                                                             \
                const char *_n = (needle);                                                                   \
                if (_r >= 0 || (e)->kind != (k) || (_n && (!(e)->msg || !strstr((e)->msg, _n)))) {           \
                        fprintf(stderr, "%s:%d: want %s containing \"%s\", got r=%d %s: %s (%s)\n",          \
                                __FILE__, __LINE__, err_kind_name(k), _n ? _n : "", _r,                      \
                                err_kind_name((e)->kind), (e)->msg ? (e)->msg : "(none)", #expr);            \
                        failures++;                                                                          \
                } else if (getenv("VERBOSE")) {                                                              \
                        printf("ok: %s -> %s: %s\n", #expr, err_kind_name((e)->kind), (e)->msg);             \
                }                                                                                            \
                err_clear(e);                                                                                \
        } while (0)

#define CHECK_OK(expr, e)                                                                                    \
        do {                                                                                                 \
                err_clear(e);                                                                                \
                if ((expr) < 0) {                                                                            \
                        fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr,                 \
                                (e)->msg ? (e)->msg : "(no message)");                                       \
                        failures++;                                                                          \
                } else if (getenv("VERBOSE")) {                                                              \
                        printf("ok: %s -> %s: %s\n", #expr, err_kind_name((e)->kind), (e)->msg);             \
                }                                                                                            \
                err_clear(e);                                                                                \
        } while (0)

#define CHECK_DONE(name)                                                                                     \
        do {                                                                                                 \
                if (failures) {                                                                              \
                        fprintf(stderr, "%s: %d failure(s)\n", name, failures);                              \
                        return 1;                                                                            \
                }                                                                                            \
                printf("%s: ok\n", name);                                                                    \
                return 0;                                                                                    \
        } while (0)
#endif
