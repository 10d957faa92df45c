// The one logger (pino): every line has level, time, component and host, plus the request or hook id
// where there is one. JSON lines when the sink is not a terminal (journald, files, pipes), short text
// lines on a terminal. Secrets never reach a line: keys that name one are censored wherever they are.
import { hostname } from 'node:os';
import pino from 'pino';
import type { Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Keys whose values are secrets, at the top level and one or two levels down. */
const SECRET_KEYS = ['password', 'passwd', 'token', 'secret', 'authorization', 'cookie', 'apiKey', 'privateKey'];
export const REDACT_PATHS = SECRET_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`, `headers["${k}"]`]);

export interface LogSink {
  write(line: string): void;
  /** A terminal gets text lines; anything else JSON. */
  isTTY?: boolean;
}

const LEVEL_NAME: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const BASE_KEYS = new Set(['level', 'time', 'pid', 'host', 'component', 'msg']);

/** Pure: one JSON log line as text: `HH:MM:SS.mmm LEVEL component: msg key=value ...`. */
export function formatLine(json: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const time = typeof o.time === 'number' ? new Date(o.time).toISOString().slice(11, 23) : '';
  const extra = Object.entries(o)
    .filter(([k]) => !BASE_KEYS.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? (/\s/.test(v) ? JSON.stringify(v) : v) : JSON.stringify(v)}`);
  return `${time} ${(LEVEL_NAME[o.level as number] ?? String(o.level)).padEnd(5)} ${o.component ?? 'ipvisor'}: ${o.msg ?? ''}${extra.length ? ' ' + extra.join(' ') : ''}\n`;
}

const secrets = new Set<string>();

/** A secret value read at run time (a password file, a token): never written in any log line, even
 * inside a message or an error text. */
export function registerSecret(value: string): void {
  const v = value.trim();
  if (v.length >= 4) secrets.add(v);
}

function scrub(line: string): string {
  let out = line;
  for (const s of secrets) {
    if (!out.includes(s)) continue;
    out = out.split(s).join('[redacted]');
  }
  // a secret with JSON-escaped characters appears escaped in a JSON line
  for (const s of secrets) {
    const esc = JSON.stringify(s).slice(1, -1);
    if (esc !== s && out.includes(esc)) out = out.split(esc).join('[redacted]');
  }
  return out;
}

let sink: LogSink = process.stderr;
let level: LogLevel = parseLevel(process.env.IPVISOR_LOG_LEVEL) ?? 'info';
let root: Logger | undefined;

function parseLevel(v: string | undefined): LogLevel | undefined {
  return v && (LOG_LEVELS as readonly string[]).includes(v) ? (v as LogLevel) : undefined;
}

/** IPVISOR_LOG_LEVEL, or info. */
export function logLevelFromEnv(env: NodeJS.ProcessEnv = process.env): LogLevel {
  return parseLevel(env.IPVISOR_LOG_LEVEL) ?? 'info';
}

export function isLogLevel(v: string): v is LogLevel {
  return parseLevel(v) !== undefined;
}

/** IPVISOR_LOG_FORMAT=json|text overrides the terminal test. */
function wantsText(): boolean {
  const f = process.env.IPVISOR_LOG_FORMAT;
  if (f === 'json') return false;
  if (f === 'text') return true;
  return !!sink.isTTY;
}

export function createLogger(opts: { sink?: LogSink; level?: LogLevel; base?: Record<string, unknown> } = {}): Logger {
  const out = opts.sink ?? sink;
  const text = opts.sink ? !!opts.sink.isTTY && process.env.IPVISOR_LOG_FORMAT !== 'json' : wantsText();
  return pino(
    {
      level: opts.level ?? level,
      base: { pid: process.pid, host: hostname(), ...opts.base },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      formatters: { level: (_label, n) => ({ level: n }) },
      timestamp: pino.stdTimeFunctions.epochTime,
    },
    { write: (line: string) => out.write(text ? formatLine(scrub(line)) : scrub(line)) },
  );
}

/** The process's logger (created on first use with the current sink and level). */
export function rootLogger(): Logger {
  root ??= createLogger();
  return root;
}

/** A component's logger: `logger('serve')`, `logger('libvirt-hook', { hookId })`. */
export function logger(component: string, bindings: Record<string, unknown> = {}): Logger {
  return rootLogger().child({ component, ...bindings });
}

/** Where log lines go (the CLI points it at its io's stderr) and at which level. */
export function configureLogging(o: { sink?: LogSink; level?: LogLevel }): void {
  if (o.sink) sink = o.sink;
  if (o.level) level = o.level;
  root = undefined;
}

/** A short id for one request or hook call, for the lines it logs. */
export function newRequestId(): string {
  return `${Date.now().toString(36)}-${Math.floor(Math.random() * 0x100000).toString(36)}`;
}

/** Log lines that are plain strings ("warning: ...", "... failed: ...") at a level that fits. */
export function logText(log: Logger, line: string): void {
  if (line.startsWith('warning: ')) log.warn(line.slice('warning: '.length));
  else if (/\b(failed|error|not started)\b/i.test(line)) log.error(line);
  else log.info(line);
}
