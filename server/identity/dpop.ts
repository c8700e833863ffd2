// DPoP proofs (RFC 9449): the JWT a client signs for one HTTP request with the key its
// token is bound to. Checked here: the header's shape and public key, the signature, the
// method and URL, the age (`iat`), the access token hash (`ath`), and that each proof is
// used once across every replica (its `jti` is claimed in the store). AGP sends no nonces.

import { createHash } from 'node:crypto';
import { calculateJwkThumbprint, decodeProtectedHeader, errors, importJWK, jwtVerify } from 'jose';
import type { JWK } from 'jose';
import type { ContextStore } from '../context/types.js';

export const DPOP_HEADER = 'dpop';
export const DPOP_ALGS = ['ES256', 'ES384', 'PS256', 'RS256', 'EdDSA'] as const;
/** How old a proof may be, in seconds. */
export const DPOP_MAX_AGE_S = 60;
/** Clock skew tolerated on a proof's `iat` (either way), in seconds. */
export const DPOP_SKEW_S = 30;
const MAX_PROOF_LENGTH = 8192;
const MAX_JTI_LENGTH = 256;
const JTI_NS = 'dpop-jti';
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

export type DpopCheck = { ok: true; jkt: string } | { ok: false; message: string };

export interface DpopRequest {
  method: string;
  /** The request's absolute URL as the client addressed it (`htu`); query and fragment are ignored. */
  url: string;
  /** The access token sent with the request (its hash must be the proof's `ath`). */
  accessToken?: string;
}

export interface DpopVerifierOptions {
  store: Pick<ContextStore, 'kvSetIfAbsent'>;
  now?: () => number;
  maxAgeS?: number;
  skewS?: number;
}

/** `https://Host:443/a?b` → `https://host/a`: RFC 9449 §4.3 compares without query and fragment. */
function normalizedUrl(url: string): string | null {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return null;
  }
}

export function accessTokenHash(token: string): string {
  return createHash('sha256').update(token, 'ascii').digest('base64url');
}

export class DpopVerifier {
  private readonly now: () => number;
  private readonly maxAgeS: number;
  private readonly skewS: number;

  constructor(private readonly options: DpopVerifierOptions) {
    this.now = options.now ?? Date.now;
    this.maxAgeS = options.maxAgeS ?? DPOP_MAX_AGE_S;
    this.skewS = options.skewS ?? DPOP_SKEW_S;
  }

  /**
   * The `DPoP` header of a request: undefined when there is none, else whether it is a
   * valid proof for this request and with which key. A proof is spent by checking it.
   */
  async check(header: string | string[] | undefined, request: DpopRequest): Promise<DpopCheck | undefined> {
    if (header === undefined) return undefined;
    if (Array.isArray(header)) return { ok: false, message: 'send one `DPoP` header' };
    if (header.length === 0 || header.length > MAX_PROOF_LENGTH) return { ok: false, message: 'the DPoP proof is empty or too long' };
    let protectedHeader: ReturnType<typeof decodeProtectedHeader>;
    try {
      protectedHeader = decodeProtectedHeader(header);
    } catch {
      return { ok: false, message: 'the DPoP proof is not a JWS' };
    }
    const { typ, alg, jwk } = protectedHeader;
    if (typ !== 'dpop+jwt') return { ok: false, message: 'the DPoP proof `typ` must be `dpop+jwt`' };
    if (typeof alg !== 'string' || !(DPOP_ALGS as readonly string[]).includes(alg)) {
      return { ok: false, message: `the DPoP proof algorithm must be one of ${DPOP_ALGS.join(', ')}` };
    }
    if (typeof jwk !== 'object' || jwk === null || PRIVATE_MEMBERS.some((m) => m in jwk)) {
      return { ok: false, message: 'the DPoP proof header must carry the public key as `jwk`' };
    }
    let payload: Record<string, unknown>;
    try {
      const key = await importJWK(jwk as JWK, alg);
      ({ payload } = await jwtVerify(header, key, {
        typ: 'dpop+jwt',
        algorithms: [alg],
        currentDate: new Date(this.now()),
        clockTolerance: this.skewS,
        requiredClaims: ['jti', 'iat'],
      }));
    } catch (err) {
      if (err instanceof errors.JWSSignatureVerificationFailed) return { ok: false, message: 'the DPoP proof signature does not verify' };
      return { ok: false, message: 'the DPoP proof is malformed' };
    }
    const claims = this.claimProblem(payload, request);
    if (claims !== undefined) return { ok: false, message: claims };
    const jkt = await calculateJwkThumbprint(jwk as JWK, 'sha256');
    const jtiKey = createHash('sha256').update(`${jkt}\n${String(payload.jti)}`).digest('base64url');
    // Kept as long as the proof could still pass the `iat` check, on every replica.
    const keepMs = (this.maxAgeS + 2 * this.skewS) * 1000;
    if (!(await this.options.store.kvSetIfAbsent(JTI_NS, jtiKey, '1', keepMs))) {
      return { ok: false, message: 'the DPoP proof was already used (`jti`)' };
    }
    return { ok: true, jkt };
  }

  private claimProblem(payload: Record<string, unknown>, request: DpopRequest): string | undefined {
    const { jti, htm, htu, iat, ath } = payload;
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > MAX_JTI_LENGTH) return `the DPoP proof \`jti\` must be a string of 1 to ${MAX_JTI_LENGTH} characters`;
    if (htm !== request.method) return `the DPoP proof \`htm\` must be \`${request.method}\``;
    const expected = normalizedUrl(request.url);
    if (typeof htu !== 'string' || expected === null || normalizedUrl(htu) !== expected) return `the DPoP proof \`htu\` must be \`${expected ?? request.url}\``;
    const nowS = this.now() / 1000;
    if (typeof iat !== 'number' || iat > nowS + this.skewS) return `the DPoP proof \`iat\` is more than ${this.skewS}s in the future`;
    if (iat < nowS - this.maxAgeS - this.skewS) return `the DPoP proof is older than ${this.maxAgeS}s (\`iat\`)`;
    if (request.accessToken !== undefined && ath !== accessTokenHash(request.accessToken)) {
      return 'the DPoP proof `ath` must be the SHA-256 of the access token it is sent with';
    }
    return undefined;
  }
}
