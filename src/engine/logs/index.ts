// Log drivers, daemon side: json-file (written by the helper, read here), local (a RAM
// ring fed from an attach stream), and Docker's framing for the logs API.
export { readJsonFileLog } from './json-file';
export { RingLog, feedFromAttach } from './ring';
export { parseLogConfig, parseSize, DEFAULT_LOG_MAX_BYTES, DEFAULT_LOG_MAX_FILES, type LogDriver } from './config';
export { encodeFrame, formatLogLine, logChunk } from './frame';
export { parseTimeNanos, formatTimeNanos, secondsToNanos } from './common';
