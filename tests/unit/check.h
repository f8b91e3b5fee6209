/* Minimal assertions for unit tests: a failed check prints where and
 * continues, check_report() turns failures into the exit code. */
#ifndef CORRAL_TESTS_CHECK_H
#define CORRAL_TESTS_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failures;
static int check_count;

#define CHECK(cond)                                                                                          \
        do {                                                                                                 \
                check_count++;                                                                               \
                if (!(cond)) {                                                                               \
                        check_failures++;                                                                    \
                        fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);             \
                }                                                                                            \
        } while (0)

#define CHECK_STR(a, b)                                                                                      \
        do {                                                                                                 \
                const char *_a = (a), *_b = (b);                                                             \
                check_count++;                                                                               \
                if (_a == NULL || _b == NULL || strcmp(_a, _b) != 0) {                                       \
                        check_failures++;                                                                    \
                        fprintf(stderr, "%s:%d: CHECK_STR failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__,   \
                                _a ? _a : "(null)", _b ? _b : "(null)");                                     \
                }                                                                                            \
        } while (0)

static inline int check_report(const char *name)
{
        fprintf(stderr, "%s: %d checks, %d failed\n", name, check_count, check_failures);
        return check_failures ? 1 : 0;
}

#define SKIP(...)                                                                                            \
        do {                                                                                                 \
                fprintf(stderr, "SKIP: " __VA_ARGS__);                                                       \
                fprintf(stderr, "\n");                                                                       \
                return 77;                                                                                   \
        } while (0)

#endif
