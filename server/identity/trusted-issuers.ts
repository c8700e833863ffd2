// The identity providers whose user tokens agents may act for (`AGP_TRUSTED_ISSUERS`): read
// and validated at start, so that a typo stops the server with a clear message instead of
// refusing every delegated exchange later.

import { readFileSync } from 'node:fs';
import { z } from 'zod';
import type { TrustedIssuer } from './exchange.js';

/** The environment variable: a JSON array, inline or in the file it names. */
export const TRUSTED_ISSUERS_ENV = 'AGP_TRUSTED_ISSUERS';

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/** https, or http to this machine (a local identity provider in development). */
function jwksUrl(text: string): URL | string {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    return `\`${text}\` is not a URL`;
  }
  if (u.protocol === 'https:') return u;
  if (u.protocol === 'http:' && LOOPBACK_HOSTS.has(u.hostname)) return u;
  return `\`${text}\` must be https (http only for localhost)`;
}

const jwk = z.looseObject({ kty: z.string() });
const entry = z.strictObject({
  issuer: z.string().min(1),
  jwks_uri: z.string().optional(),
  jwks: z.strictObject({ keys: z.array(jwk).min(1) }).optional(),
  audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
  algorithms: z.array(z.string().min(1)).min(1).optional(),
});
const list = z.array(entry);

function describe(issue: z.core.$ZodIssue): string {
  return issue.path.length === 0 ? issue.message : `${issue.path.map(String).join('.')}: ${issue.message}`;
}

/**
 * The trusted issuers of a configuration text (a JSON array). `agpIssuer` is AGP's own
 * issuer: its tokens are verified against its own keys, never as an outside provider's.
 */
export function parseTrustedIssuers(text: string, agpIssuer: string): { value?: TrustedIssuer[]; errors: string[] } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return { errors: [`not valid JSON: ${(err as Error).message}`] };
  }
  const parsed = list.safeParse(raw);
  if (!parsed.success) return { errors: parsed.error.issues.map(describe) };
  const errors: string[] = [];
  const value: TrustedIssuer[] = [];
  const seen = new Set<string>();
  parsed.data.forEach((e, i) => {
    const at = `[${i}] ${e.issuer}`;
    if (seen.has(e.issuer)) errors.push(`${at}: listed twice`);
    seen.add(e.issuer);
    if (e.issuer.replace(/\/+$/, '') === agpIssuer.replace(/\/+$/, '')) errors.push(`${at}: is AGP's own issuer`);
    if ((e.jwks_uri === undefined) === (e.jwks === undefined)) {
      errors.push(`${at}: give exactly one of \`jwks_uri\` and \`jwks\``);
      return;
    }
    let jwks: TrustedIssuer['jwks'];
    if (e.jwks_uri !== undefined) {
      const u = jwksUrl(e.jwks_uri);
      if (typeof u === 'string') {
        errors.push(`${at}: jwks_uri ${u}`);
        return;
      }
      jwks = u;
    } else {
      jwks = e.jwks as TrustedIssuer['jwks'];
    }
    const t: TrustedIssuer = { issuer: e.issuer, jwks };
    if (e.audience !== undefined) t.audience = e.audience;
    if (e.algorithms !== undefined) t.algorithms = e.algorithms;
    value.push(t);
  });
  return errors.length > 0 ? { errors } : { value, errors };
}

/**
 * `AGP_TRUSTED_ISSUERS` from the environment: unset or empty is none; a value starting with
 * `[` is the JSON itself; anything else is the path of a file holding it.
 */
export function trustedIssuersFromEnv(env: Readonly<Record<string, string | undefined>>, agpIssuer: string): { value?: TrustedIssuer[]; errors: string[] } {
  const setting = (env[TRUSTED_ISSUERS_ENV] ?? '').trim();
  if (setting === '') return { value: [], errors: [] };
  let text = setting;
  if (!setting.startsWith('[')) {
    try {
      text = readFileSync(setting, 'utf8');
    } catch (err) {
      return { errors: [`cannot read \`${setting}\`: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`] };
    }
  }
  return parseTrustedIssuers(text, agpIssuer);
}
