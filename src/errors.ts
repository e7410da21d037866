// Errors at the boundaries are values with one line a person can act on.
export class LeakscopeError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'LeakscopeError';
  }
}
