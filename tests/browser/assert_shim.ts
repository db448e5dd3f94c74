/**
 * The part of `node:assert/strict` the stream scenarios use, for a browser
 * page: `deno bundle --platform=browser` leaves `node:` imports in the
 * bundle, so the test page maps `node:assert/strict` to this module with an
 * import map (`chromium.ts`). It follows Node's rules for what it covers:
 * `strictEqual` compares with `Object.is`, `rejects` takes a class, a
 * validation function (which must return `true`) or a RegExp.
 *
 * A test helper only; it is not shipped.
 *
 * @module
 */

/** What a failed assertion throws, as in Node. */
export class AssertionError extends Error {
  override name = "AssertionError";
  readonly code = "ERR_ASSERTION";
}

const show = (value: unknown) => {
  try {
    return typeof value === "string" ? JSON.stringify(value) : String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
};

/** Throws unless `value` is truthy. */
export function ok(value: unknown, message?: string | Error): asserts value {
  if (value) return;
  if (message instanceof Error) throw message;
  throw new AssertionError(
    message ?? `The expression evaluated to a falsy value: ${show(value)}`,
  );
}

/** Throws unless `Object.is(actual, expected)`. */
export function strictEqual<T>(
  actual: unknown,
  expected: T,
  message?: string | Error,
): asserts actual is T {
  if (Object.is(actual, expected)) return;
  if (message instanceof Error) throw message;
  throw new AssertionError(
    message ??
      `Expected values to be strictly equal: ${show(actual)} !== ${
        show(expected)
      }`,
  );
}

type Expected =
  | RegExp
  // deno-lint-ignore no-explicit-any
  | (new (...args: any[]) => unknown)
  | ((error: unknown) => boolean);

/**
 * Awaits `promise` (or what `promise()` returns) and throws unless it
 * rejects with an error that `expected` accepts.
 */
export async function rejects(
  promise: Promise<unknown> | (() => Promise<unknown>),
  expected?: Expected,
  message?: string,
): Promise<void> {
  try {
    await (typeof promise === "function" ? promise() : promise);
  } catch (error) {
    if (expected === undefined) return;
    if (expected instanceof RegExp) {
      if (expected.test(String(error))) return;
      throw new AssertionError(
        message ??
          `The input did not match ${expected}. Input: ${show(error)}`,
        { cause: error },
      );
    }
    if (expected.prototype !== undefined && error instanceof expected) return;
    if (
      expected === Error ||
      Object.prototype.isPrototypeOf.call(Error, expected)
    ) {
      throw new AssertionError(
        message ??
          `The error is expected to be an instance of "${expected.name}". ` +
            `Received ${show(error)}`,
        { cause: error },
      );
    }
    if ((expected as (error: unknown) => boolean)(error) === true) return;
    throw new AssertionError(
      message ??
        `The validation function is expected to return "true". ` +
          `Received false; the error: ${show(error)}`,
      { cause: error },
    );
  }
  throw new AssertionError(message ?? "Missing expected rejection.");
}
