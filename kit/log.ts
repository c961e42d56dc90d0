/**
 * Structured JSON logs (one object per line) for every component. A component
 * takes a child logger named after itself so every line says who wrote it.
 */
import { type Logger, pino } from "pino";

export type { Logger };

export function createLogger(component: string, level = process.env.SKEIN_LOG_LEVEL ?? "info"): Logger {
  return pino({
    level,
    base: { component },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    // Secrets must never reach a log line, whatever a caller passes in.
    redact: {
      paths: ["secrets", "*.secrets", "token", "*.token", "password", "*.password"],
      censor: "[redacted]",
    },
  });
}
