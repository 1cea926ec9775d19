#include "cffmpeg_log.h"
#include <libavutil/log.h>
#include <stdarg.h>
#include <string.h>

static __thread char last_error[512];

static void log_callback(void *avcl, int level, const char *fmt, va_list vl) {
    if (level > AV_LOG_ERROR) return;
    int print_prefix = 0;
    char line[512];
    av_log_format_line(avcl, level, fmt, vl, line, sizeof line, &print_prefix);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == ' ')) line[--n] = 0;
    if (n > 0) memcpy(last_error, line, n + 1);
}

void cffmpeg_install_log_capture(void) { av_log_set_callback(log_callback); }
void cffmpeg_clear_last_error(void) { last_error[0] = 0; }
const char *cffmpeg_last_error_line(void) { return last_error; }
