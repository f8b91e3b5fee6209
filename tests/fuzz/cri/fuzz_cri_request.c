/* Every CRI request type decoded from hostile bytes, as the server does:
 * the first byte picks the method. A decoded message must re-encode and
 * decode to the same size (protobuf-c's packer and unpacker agree). */
#include <string.h>

#include "runtime/v1/api.pb-c.h"
#include "util/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
        ProtobufCMessage *again = protobuf_c_message_unpack(desc, NULL, len, buf);
        if (again == NULL || protobuf_c_message_get_packed_size(again) != len)
                abort();
        protobuf_c_message_free_unpacked(again, NULL);
        protobuf_c_message_free_unpacked(m, NULL);
        free(buf);
        return 0;
}
