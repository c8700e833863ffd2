// Errors of the context store's admin and identity calls. Each carries the HTTP status the
// server answers with (`statusCode`, which Fastify's error handler honours) and a stable code.

export class StoreUnavailableError extends Error {
  readonly statusCode = 503;
  readonly code = 'store_unavailable';
  constructor(message = 'the context store is unavailable', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreUnavailableError';
  }
}

export class StoreInputError extends Error {
  readonly statusCode = 400;
  readonly code = 'store_invalid_input';
  readonly hint: string | undefined;
  constructor(message: string, hint?: string) {
    super(message);
    this.name = 'StoreInputError';
    this.hint = hint;
  }
}
