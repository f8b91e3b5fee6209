/* cloud-hypervisor's HTTP replies (vm/chv_api.c vm_http_parse): any bytes,
 * cut anywhere, with and without EOF. A complete parse must stay within the
 * input and agree with itself when fed the bytes again whole. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"
#include "vm/chv-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        for (int eof = 0; eof < 2; eof++) {
                struct vm_http_response r;
                struct err e = ERR_INIT;
                int rc = vm_http_parse((const char *)data, size, eof, &r, &e);
                if (rc == 1) {
                        if (r.consumed > size || r.status < 100 || r.status > 599 || !r.body ||
                            strlen(r.body) > r.body_len)
                                abort();
                        /* The same bytes up to `consumed` parse to the same reply. */
                        struct vm_http_response r2;
                        struct err e2 = ERR_INIT;
                        if (vm_http_parse((const char *)data, r.consumed, true, &r2, &e2) == 1) {
                                if (r2.status != r.status || r2.body_len != r.body_len ||
                                    memcmp(r2.body, r.body, r.body_len) != 0)
                                        abort();
                                vm_http_response_clear(&r2);
                        }
                        err_clear(&e2);
                        vm_http_response_clear(&r);
                } else if (rc == -1 && !e.msg) {
                        abort(); /* an error always says why */
                }
                err_clear(&e);
        }
        return 0;
}
