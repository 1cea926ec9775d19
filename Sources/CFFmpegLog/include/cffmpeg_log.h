// FFmpeg explains most failures only in its log ("moov atom not found"), not in the return code.
// This keeps each thread's last error-level log line so that MediaError can quote it; everything
// else FFmpeg logs is dropped (the CLI prints its own progress).
#ifndef PIPELINED_CFFMPEG_LOG_H
#define PIPELINED_CFFMPEG_LOG_H

void cffmpeg_install_log_capture(void);
void cffmpeg_clear_last_error(void);
const char *cffmpeg_last_error_line(void);

#endif
