// The one configuration loader of the service: command-line flags over `AGP_*` environment
// variables over defaults, validated with zod at start. A bad value is one clear line per
// problem (`AGP_PORT: expected an integer 0..65535, got `http``), never a stack trace.

import { z } from 'zod';

export const DEFAULT_PORT = 8181;
export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_BODY_LIMIT = 1024 * 1024;
export const DEFAULT_MAX_BATCH = 1000;

export interface ServerConfig {
  /** The policy directory. */
  policies: string;
  host: string;
  port: number;
  /** PEP API keys (plain text here; hashed as soon as auth is built). */
  apiKeys: string[];
  adminKey: string | undefined;
  redisUrl: string | undefined;
  redisPrefix: string;
  /** Deny agents the registry does not hold; default: on with Redis, off embedded. */
  requireRegisteredAgents: boolean;
  audit: 'file' | 'stdout' | 'none';
  auditFile: string;
  auditHmacKey: string | undefined;
  auditBuffer: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  bodyLimit: number;
  maxBatch: number;
  /** Watch the policy directory for changes. */
  watch: boolean;
  /** Milliseconds to wait for in-flight requests on shutdown before closing anyway. */
  shutdownTimeoutMs: number;
}

/** Flags as `agp serve` parses them (all optional; they override the environment). */
export interface ServeFlags {
  policies?: string;
  port?: number | string;
  host?: string;
  redisUrl?: string;
  logLevel?: string;
  auditFile?: string;
  watch?: boolean;
}

export type ConfigResult = { ok: true; config: ServerConfig } | { ok: false; errors: string[] };

interface Field {
  env: string;
  flag?: keyof ServeFlags;
  parse: (raw: string) => { ok: true; value: unknown } | { ok: false; expected: string };
}

function zodField<T>(schema: z.ZodType<T>, expected: string): Field['parse'] {
  return (raw) => {
    const r = schema.safeParse(raw);
    return r.success ? { ok: true, value: r.data } : { ok: false, expected };
  };
}

const port = z.coerce.number().int().min(0).max(65535);
const positive = (max: number) => z.coerce.number().int().min(1).max(max);
const bool = z
  .string()
  .transform((s) => s.trim().toLowerCase())
  .pipe(z.enum(['1', '0', 'true', 'false', 'yes', 'no', 'on', 'off']))
  .transform((s) => s === '1' || s === 'true' || s === 'yes' || s === 'on');
const list = z.string().transform((s) =>
  s
    .split(',')
    .map((k) => k.trim())
    .filter((k) => k.length > 0),
);
const key = z.string().min(16);
const redisUrl = z.string().regex(/^rediss?:\/\/[^\s]+$/);

const FIELDS: Record<keyof ServerConfig, Field> = {
  policies: { env: 'AGP_POLICIES', flag: 'policies', parse: zodField(z.string().min(1), 'a directory path') },
  host: { env: 'AGP_HOST', flag: 'host', parse: zodField(z.string().min(1).regex(/^[^\s/]+$/), 'a host name or IP address') },
  port: { env: 'AGP_PORT', flag: 'port', parse: zodField(port, 'an integer 0..65535') },
  apiKeys: {
    env: 'AGP_API_KEYS',
    parse: zodField(list.pipe(z.array(key)), 'a comma-separated list of keys of at least 16 characters'),
  },
  adminKey: { env: 'AGP_ADMIN_KEY', parse: zodField(key, 'a key of at least 16 characters') },
  redisUrl: { env: 'AGP_REDIS_URL', flag: 'redisUrl', parse: zodField(redisUrl, 'a redis:// or rediss:// URL') },
  redisPrefix: { env: 'AGP_REDIS_PREFIX', parse: zodField(z.string().min(1).max(64).regex(/^[A-Za-z0-9:_.-]+$/), 'a key prefix of letters, digits, `:_.-`') },
  requireRegisteredAgents: { env: 'AGP_REQUIRE_REGISTERED_AGENTS', parse: zodField(bool, 'true or false') },
  audit: { env: 'AGP_AUDIT', parse: zodField(z.enum(['file', 'stdout', 'none']), 'one of file|stdout|none') },
  auditFile: { env: 'AGP_AUDIT_FILE', flag: 'auditFile', parse: zodField(z.string().min(1), 'a file path') },
  auditHmacKey: { env: 'AGP_AUDIT_HMAC_KEY', parse: zodField(key, 'a key of at least 16 characters') },
  auditBuffer: { env: 'AGP_AUDIT_BUFFER', parse: zodField(positive(10_000_000), 'an integer 1..10000000') },
  logLevel: {
    env: 'AGP_LOG_LEVEL',
    flag: 'logLevel',
    parse: zodField(z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']), 'one of fatal|error|warn|info|debug|trace|silent'),
  },
  bodyLimit: { env: 'AGP_BODY_LIMIT', parse: zodField(positive(256 * 1024 * 1024), 'a number of bytes 1..268435456') },
  maxBatch: { env: 'AGP_MAX_BATCH', parse: zodField(positive(100_000), 'an integer 1..100000') },
  watch: { env: 'AGP_WATCH', flag: 'watch', parse: zodField(bool, 'true or false') },
  shutdownTimeoutMs: { env: 'AGP_SHUTDOWN_TIMEOUT_MS', parse: zodField(positive(600_000), 'milliseconds 1..600000') },
};

/** Every environment variable the service reads (for docs and `agp serve --help`). */
export const CONFIG_ENV = Object.fromEntries(Object.entries(FIELDS).map(([k, f]) => [k, f.env])) as Record<keyof ServerConfig, string>;

function show(raw: string): string {
  return raw.length > 40 ? `${raw.slice(0, 40)}...` : raw;
}

/**
 * Builds the configuration from flags, then the environment, then defaults. Secrets
 * (keys) are never echoed in error messages.
 */
export function loadConfig(flags: ServeFlags = {}, env: NodeJS.ProcessEnv = process.env): ConfigResult {
  const errors: string[] = [];
  const values: Partial<Record<keyof ServerConfig, unknown>> = {};
  const secret = new Set<keyof ServerConfig>(['apiKeys', 'adminKey', 'auditHmacKey']);
  for (const name of Object.keys(FIELDS) as (keyof ServerConfig)[]) {
    const field = FIELDS[name];
    const flag = field.flag === undefined ? undefined : flags[field.flag];
    let raw: string | undefined;
    let source = field.env;
    if (flag !== undefined) {
      if (typeof flag === 'boolean') {
        values[name] = flag;
        continue;
      }
      raw = String(flag);
      source = `--${field.flag!.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}`;
    } else {
      raw = env[field.env];
      if (raw === '') raw = undefined;
    }
    if (raw === undefined) continue;
    const r = field.parse(raw);
    if (r.ok) values[name] = r.value;
    else errors.push(secret.has(name) ? `${source}: expected ${r.expected}` : `${source}: expected ${r.expected}, got \`${show(raw)}\``);
  }
  if (errors.length > 0) return { ok: false, errors };

  const redis = values.redisUrl as string | undefined;
  const config: ServerConfig = {
    policies: (values.policies as string | undefined) ?? 'policies',
    host: (values.host as string | undefined) ?? DEFAULT_HOST,
    port: (values.port as number | undefined) ?? DEFAULT_PORT,
    apiKeys: (values.apiKeys as string[] | undefined) ?? [],
    adminKey: values.adminKey as string | undefined,
    redisUrl: redis,
    redisPrefix: (values.redisPrefix as string | undefined) ?? 'agp',
    requireRegisteredAgents: (values.requireRegisteredAgents as boolean | undefined) ?? redis !== undefined,
    audit: (values.audit as ServerConfig['audit'] | undefined) ?? 'file',
    auditFile: (values.auditFile as string | undefined) ?? '.agp-data/audit.jsonl',
    auditHmacKey: values.auditHmacKey as string | undefined,
    auditBuffer: (values.auditBuffer as number | undefined) ?? 10_000,
    logLevel: (values.logLevel as ServerConfig['logLevel'] | undefined) ?? 'info',
    bodyLimit: (values.bodyLimit as number | undefined) ?? DEFAULT_BODY_LIMIT,
    maxBatch: (values.maxBatch as number | undefined) ?? DEFAULT_MAX_BATCH,
    watch: (values.watch as boolean | undefined) ?? true,
    shutdownTimeoutMs: (values.shutdownTimeoutMs as number | undefined) ?? 10_000,
  };
  if (config.adminKey !== undefined && config.apiKeys.includes(config.adminKey)) {
    return { ok: false, errors: ['AGP_ADMIN_KEY: must differ from every key in AGP_API_KEYS'] };
  }
  return { ok: true, config };
}

/** True for addresses only this machine can reach. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h) || h === '::ffff:127.0.0.1';
}
