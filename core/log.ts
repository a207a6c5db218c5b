import winston from 'winston';
import type { Config } from './config.ts';

export type Logger = winston.Logger;

const SECRET_KEY =
  /pass(word)?|secret|token|authorization|cookie|api[-_]?key|private|master[-_]?key|credential/i;
const REDACTED = '[redacted]';

/** Replaces the value of every secret-looking field, at any depth, before a line is written. */
export function redact(value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== 'object') return value;
  // Deeper than any structure Woolly logs: drop it rather than risk writing a secret.
  if (depth > 8) return REDACTED;
  if (Array.isArray(value)) return value.map((item) => redact(item, depth + 1));
  if (value instanceof Error) return { name: value.name, message: value.message };
  const out: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value)) {
    out[key] = SECRET_KEY.test(key) ? REDACTED : redact(inner, depth + 1);
  }
  return out;
}

const redactFormat = winston.format((info) => {
  for (const key of Object.keys(info)) {
    if (key === 'level' || key === 'message') continue;
    info[key] = SECRET_KEY.test(key) ? REDACTED : redact(info[key]);
  }
  return info;
});

/**
 * The process logger. Components take a child (`logger.child({ requestId })`,
 * `{ instanceId, operationId }`) so every line carries the ids it concerns.
 */
export function makeLogger(config: Pick<Config, 'log'>, stream?: NodeJS.WritableStream): Logger {
  const format =
    config.log.format === 'json'
      ? winston.format.combine(redactFormat(), winston.format.timestamp(), winston.format.json())
      : winston.format.combine(
          redactFormat(),
          winston.format.timestamp({ format: 'HH:mm:ss' }),
          winston.format.printf(({ level, message, timestamp, ...meta }) => {
            const rest = Object.keys(meta).length > 0 ? ` ${JSON.stringify(meta)}` : '';
            return `${timestamp} ${level} ${message}${rest}`;
          }),
        );
  const transport = stream
    ? new winston.transports.Stream({ stream })
    : new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug'] });
  return winston.createLogger({ level: config.log.level, format, transports: [transport] });
}
