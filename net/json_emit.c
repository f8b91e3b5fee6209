/* yajl tree -> JSON text, for handing plugin configs on with fields added. */
#include <yajl/yajl_tree.h>

#include "net/net-internal.h"

void json_emit(struct sbuf *b, yajl_val v)
{
        if (!v || YAJL_IS_NULL(v)) {
                sbuf_puts(b, "null");
        } else if (YAJL_IS_STRING(v)) {
                json_quote(b, v->u.string);
        } else if (YAJL_IS_NUMBER(v)) {
                /* yajl keeps the number's text: no precision is lost. */
                sbuf_puts(b, v->u.number.r);
        } else if (YAJL_IS_TRUE(v)) {
                sbuf_puts(b, "true");
        } else if (YAJL_IS_FALSE(v)) {
                sbuf_puts(b, "false");
        } else if (YAJL_IS_ARRAY(v)) {
                sbuf_putc(b, '[');
                for (size_t i = 0; i < v->u.array.len; i++) {
                        if (i)
                                sbuf_putc(b, ',');
                        json_emit(b, v->u.array.values[i]);
                }
                sbuf_putc(b, ']');
        } else if (YAJL_IS_OBJECT(v)) {
                sbuf_putc(b, '{');
                for (size_t i = 0; i < v->u.object.len; i++) {
                        if (i)
                                sbuf_putc(b, ',');
                        json_quote(b, v->u.object.keys[i]);
                        sbuf_putc(b, ':');
                        json_emit(b, v->u.object.values[i]);
                }
                sbuf_putc(b, '}');
        }
}
