/* Every CRI request type decoded from hostile bytes, as the server does:
 * the first byte picks the method. A decoded message must re-encode and
 * decode to the same bytes again (protobuf-c's packer and unpacker agree). */
#include <string.h>

#include "runtime/v1/api.pb-c.h"
#include "util/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Whether m or any message inside it kept unknown fields. */
static bool has_unknown(const ProtobufCMessage *m)
{
        if (m == NULL)
                return false;
        if (m->n_unknown_fields)
                return true;
        const ProtobufCMessageDescriptor *d = m->descriptor;
        for (unsigned i = 0; i < d->n_fields; i++) {
                const ProtobufCFieldDescriptor *f = &d->fields[i];
                if (f->type != PROTOBUF_C_TYPE_MESSAGE)
                        continue;
                const char *at = (const char *)m + f->offset;
                if (f->label == PROTOBUF_C_LABEL_REPEATED) {
                        size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
                        ProtobufCMessage *const *v = *(ProtobufCMessage *const *const *)at;
                        for (size_t k = 0; k < n; k++)
                                if (has_unknown(v[k]))
                                        return true;
                } else if (has_unknown(*(ProtobufCMessage *const *)at)) {
                        return true;
                }
        }
        return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const ProtobufCServiceDescriptor *const services[] = {
                &runtime__v1__runtime_service__descriptor,
                &runtime__v1__image_service__descriptor,
        };
        if (size < 1)
                return 0;
        size_t total = 0;
        for (size_t i = 0; i < ARRAY_SIZE(services); i++)
                total += services[i]->n_methods;
        size_t pick = data[0] % total;
        const ProtobufCMessageDescriptor *desc = NULL;
        for (size_t i = 0; i < ARRAY_SIZE(services) && desc == NULL; i++) {
                if (pick < services[i]->n_methods)
                        desc = services[i]->methods[pick].input;
                else
                        pick -= services[i]->n_methods;
        }
        ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, size - 1, data + 1);
        if (m == NULL)
                return 0;
        size_t len = protobuf_c_message_get_packed_size(m);
        uint8_t *buf = xmalloc(len ? len : 1);
        if (protobuf_c_message_pack(m, buf) != len)
                abort();
        /* Input may hold non-canonical varints, so the first encoding can be
         * shorter than the input; from then on it must be stable. */
        ProtobufCMessage *again = protobuf_c_message_unpack(desc, NULL, len, buf);
        if (again == NULL) {
                /* protobuf-c keeps field number 0 as an unknown field when its tag
                 * is a non-canonical varint (80 00), writes it back canonically
                 * (00) and then refuses that: its quirk, harmless to us (unknown
                 * fields are ignored). Anything else must decode again. */
                if (!has_unknown(m))
                        abort();
                free(buf);
                protobuf_c_message_free_unpacked(m, NULL);
                return 0;
        }
        size_t len2 = protobuf_c_message_get_packed_size(again);
        uint8_t *buf2 = xmalloc(len2 ? len2 : 1);
        if (len2 != len || protobuf_c_message_pack(again, buf2) != len || memcmp(buf, buf2, len) != 0)
                abort();
        free(buf2);
        protobuf_c_message_free_unpacked(again, NULL);
        protobuf_c_message_free_unpacked(m, NULL);
        free(buf);
        return 0;
}
