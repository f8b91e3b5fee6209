/* Structured logs: one line per event, logfmt or JSON, one write(2) each so
 * lines from threads never interleave. */
#include <stdatomic.h>
#include <string.h>

#include "util/util.h"

static _Atomic int level = LOG_LVL_INFO;
static _Atomic bool as_json = false;

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

int log_level_parse(const char *name, enum log_level *out)
{
        for (size_t i = 0; i < ARRAY_SIZE(level_names); i++) {
                if (name && strcmp(name, level_names[i]) == 0) {
                        *out = (enum log_level)i;
                        return 0;
                }
        }
        return -1;
}

void log_set_level(enum log_level lvl)
{
        level = lvl;
}
enum log_level log_get_level(void)
{
        return (enum log_level)level;
}
void log_set_json(bool json)
{
        as_json = json;
}

/* logfmt quotes a value only when it must. */
static void logfmt_value(struct sbuf *b, const char *s)
{
        bool quote = *s == '\0' || strpbrk(s, " =\"\t\n") != NULL;
        if (!quote) {
                sbuf_puts(b, s);
                return;
        }
        json_quote(b, s);
}

void log_write(enum log_level lvl, const char *component, const char *fmt, ...)
{
        if ((int)lvl > level)
                return;
        va_list ap;
        va_start(ap, fmt);
        cleanup_free char *msg = xvasprintf(fmt, ap);
        va_end(ap);
        char ts[40];
        time_rfc3339nano(time_now_ns(), ts);
        struct sbuf b = {0};
        if (as_json) {
                sbuf_printf(&b, "{\"time\":\"%s\",\"level\":\"%s\",\"component\":", ts, level_names[lvl]);
                json_quote(&b, component);
                sbuf_puts(&b, ",\"msg\":");
                json_quote(&b, msg);
                sbuf_puts(&b, "}\n");
        } else {
                sbuf_printf(&b, "time=%s level=%s component=%s msg=", ts, level_names[lvl], component);
                logfmt_value(&b, msg);
                sbuf_putc(&b, '\n');
        }
        (void)fd_write_all(STDERR_FILENO, b.buf, b.len);
        sbuf_free(&b);
}
